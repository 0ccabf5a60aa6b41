"""Reply -> Telegram messages: entities for *bold*, splitting under 4096 UTF-16 units, keyboards, callback data."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.reload import ContentHolder
from bot.engine.reply import TELEGRAM_TEXT_LIMIT, Button, Reply, escape_markup, plain_text, utf16_len
from bot.engine.turn import ButtonPress
from bot.telegram.callbacks import CALLBACK_DATA_LIMIT, pack_press, press_from
from bot.telegram.render import MAX_BUTTONS, keyboard, render_reply

SHIPPED = Path(__file__).resolve().parents[2]


def bold_of(message) -> list[str]:  # type: ignore[no-untyped-def]
    raw = message.text.encode("utf-16-le")
    return [raw[e.offset * 2 : (e.offset + e.length) * 2].decode("utf-16-le") for e in message.entities if e.type == "bold"]


def test_bold_markup_becomes_entities_counted_in_utf16() -> None:
    [message] = render_reply(Reply(text="🙂 Call *988* now"))
    assert message.text == "🙂 Call 988 now"
    [entity] = message.entities
    assert (entity.type, entity.offset, entity.length) == ("bold", 8, 3)  # the emoji is two units
    assert message.kwargs()["parse_mode"] is None


def test_what_a_person_typed_is_never_read_as_markup() -> None:
    typed = "<b>hi</b> *not bold* _x_ [link](http://evil.example) `code` \\ *"
    [message] = render_reply(Reply(text=escape_markup(typed)))
    assert message.text == typed
    assert message.entities == ()


def long_reply(lines: int = 400) -> Reply:
    crisis = "In immediate danger? Call *911* now.\n\n*988 Suicide & Crisis Lifeline* (24/7)\nCall *988* · Text *988*"
    body = "\n".join(f"Line {n}: *an organisation* with a description that goes on for a while" for n in range(lines))
    buttons = (Button(label="📋 Copy 988", action="copy", copy_text="988"), Button(label="Menu", action="menu"))
    return Reply(text=f"{crisis}\n\n{body}", buttons=buttons)


def test_a_long_reply_is_split_on_lines_with_the_crisis_lines_first_and_the_keyboard_last() -> None:
    reply = long_reply()
    messages = render_reply(reply)
    assert len(messages) >= 3
    assert all(0 < utf16_len(m.text) <= TELEGRAM_TEXT_LIMIT for m in messages)
    assert messages[0].text.startswith("In immediate danger? Call 911 now.")
    assert {"911", "988"} <= set(bold_of(messages[0]))
    assert [m.reply_markup is not None for m in messages] == [False] * (len(messages) - 1) + [True]
    rejoined = "\n".join(m.text for m in messages)
    assert rejoined.replace("\n", "") == plain_text(reply.text).replace("\n", "")  # nothing lost
    assert all(m.text.split("\n")[0].startswith(("In immediate", "Line")) for m in messages)  # cut at line starts


def test_a_single_line_longer_than_the_limit_is_cut_without_breaking_emoji() -> None:
    messages = render_reply(Reply(text="🙂" * 5000))
    assert [utf16_len(m.text) for m in messages] == [4096, 4096, 1808]
    assert "".join(m.text for m in messages) == "🙂" * 5000


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from(list("ab *\\🙂é") + [" "]), max_size=40),
        min_size=1,
        max_size=30,
    ),
    st.integers(min_value=8, max_value=60),
)
def test_split_keeps_every_character_and_respects_the_limit(lines: list[str], limit: int) -> None:
    text = "\n".join(lines)
    messages = render_reply(Reply(text=text), limit=limit)
    assert all(utf16_len(m.text) <= limit for m in messages)
    squeeze = lambda s: "".join(s.split())  # noqa: E731 - whitespace at message edges is trimmed, as Telegram does
    assert squeeze("".join(m.text for m in messages)) == squeeze(plain_text(text))
    for message in messages:
        for entity in message.entities:
            assert 0 <= entity.offset and entity.offset + entity.length <= utf16_len(message.text)


def test_keyboard_keeps_only_links_telegram_accepts_and_uses_copy_text_buttons() -> None:
    markup = keyboard(
        (
            Button(label="ok", action="url", url="https://988lifeline.org"),
            Button(label="tg", action="url", url="tg://resolve?domain=hubbot"),
            Button(label="js", action="url", url="javascript:alert(1)"),
            Button(label="tel", action="url", url="tel:988"),
            Button(label="hostless", action="url", url="http://"),
            Button(label="📋 Copy 988", action="copy", copy_text="988"),
            Button(label="SOS", action="sos"),
            Button(label="Menu", action="menu"),
            Button(label="   ", action="menu"),
        )
    )
    assert markup is not None
    flat = [b for row in markup.inline_keyboard for b in row]
    assert [b.text for b in flat] == ["ok", "tg", "📋 Copy 988", "SOS", "Menu"]
    assert flat[2].copy_text is not None and flat[2].copy_text.text == "988"
    assert press_from(flat[3].callback_data) == ButtonPress("sos")
    assert [len(row) for row in markup.inline_keyboard] == [1, 1, 1, 2]  # links alone, short callbacks paired


def test_keyboard_stops_at_telegrams_100_buttons() -> None:
    markup = keyboard(tuple(Button(label=f"b{n}", action="menu") for n in range(130)))
    assert markup is not None
    assert sum(len(row) for row in markup.inline_keyboard) == MAX_BUTTONS


def test_callback_data_round_trips_and_never_exceeds_64_bytes() -> None:
    data = pack_press("handoff", "send:crisis-org")
    assert data is not None and press_from(data) == ButtonPress("handoff", "send:crisis-org")
    assert press_from(pack_press("menu", None)) == ButtonPress("menu")
    too_long = pack_press("topic", "x" * 80)
    assert too_long is not None and press_from(too_long) == ButtonPress("topic")  # the value goes, the button stays
    assert pack_press("a" * 80, None) is None
    assert press_from("not ours") is None and press_from("") is None and press_from("b|") is None


@pytest.fixture(scope="module")
def loaded() -> ContentHolder:
    holder = ContentHolder(SHIPPED)
    holder.load()
    return holder


def test_every_button_the_shipped_content_can_produce_fits_in_callback_data(loaded: ContentHolder) -> None:
    content = loaded.current.content
    renderer = loaded.current.engine.renderer
    presses = [(b.action, b.value) for b in content.buttons.values()]
    for language in content.languages:
        presses += [(b.action, b.value) for b in renderer.topic_buttons(language)]
        presses += [(b.action, b.value) for b in renderer.region_buttons(language)]
        presses += [(b.action, b.value) for b in renderer.language_buttons(language)]
    presses += [("handoff", f"send:{org.id}") for org in content.resources.organizations]
    assert len(presses) > 20
    for action, value in presses:
        data = pack_press(action, value)
        assert data is not None and len(data.encode()) <= CALLBACK_DATA_LIMIT
        assert press_from(data) == ButtonPress(action, value), (action, value)
