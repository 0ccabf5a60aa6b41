"""Risk detection on phrasings written for these tests, not copied from the vocabulary."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.content.models import RiskLevel
from tests.unit.nlu_support import shipped_understander

NONE, CONCERN, HIGH, IMMINENT = RiskLevel.NONE, RiskLevel.CONCERN, RiskLevel.HIGH, RiskLevel.IMMINENT

CRISIS = [
    # (text, at least, about)
    ("honestly i just want to die", HIGH, "self"),
    ("I WANT TO DIE", HIGH, "self"),
    ("i wanna dieeeee", HIGH, "self"),
    ("i want 2 die", HIGH, "self"),
    ("kms fr", HIGH, "self"),
    ("gonna kms", HIGH, "self"),
    ("i'm going to unalive myself", HIGH, "self"),
    ("i keep thinking about killing myself", HIGH, "self"),
    ("i want to kil myself", HIGH, "self"),
    ("i want to kill my self", HIGH, "self"),
    ("thinking of ending my life", HIGH, "self"),
    ("I'm suicidal", HIGH, "self"),
    ("im sucidal", HIGH, "self"),
    ("i dont want to be alive anymore", HIGH, "self"),
    ("i do not want to exist", HIGH, "self"),
    ("my family would be better off without me", HIGH, "self"),
    ("no one would even notice if i was gone", HIGH, "self"),
    ("there's no reason for me to live", HIGH, "self"),
    ("i'm tired of living", HIGH, "self"),
    ("i've been self harming again", HIGH, "self"),
    ("i have the urge to cut", HIGH, "self"),
    ("i wish i could go to sleep and never wake up", HIGH, "self"),
    ("my sister is talking about killing herself", HIGH, "other"),
    ("my best friend told me she wants to die", HIGH, "other"),
    ("i think my son is suicidal", HIGH, "other"),
    ("i'll be gone before morning, this is goodbye", IMMINENT, "self"),
    ("i'm going to do it tonight, i want to die", IMMINENT, "self"),
    ("i bought a rope and i want to kill myself", IMMINENT, "self"),
    ("i took a whole bottle of pills", IMMINENT, "self"),
    ("i've written my suicide note", IMMINENT, "self"),
    ("quiero morirme", HIGH, "self"),
    ("ya no quiero seguir viviendo", HIGH, "self"),
    ("tengo ganas de matarme", HIGH, "self"),
    ("pienso en suicidarme todos los dias", HIGH, "self"),
    ("estoy harta de vivir", HIGH, "self"),
    ("todos estarían mejor sin mí", HIGH, "self"),
    ("me volví a cortar", HIGH, "self"),
    ("mi hermano se quiere suicidar", HIGH, "other"),
    ("esta noche me voy a matar", IMMINENT, "self"),
    ("este es mi último mensaje", IMMINENT, "self"),
    ("this test is killing me and i want to kill myself", HIGH, "self"),
    # method questions, overdoses, glued titles ("...dieNothing"), passive wishes
    ("what is the most painless way to go", HIGH, "self"),
    ("how many of my sleeping pills would it take to not wake up", HIGH, "self"),
    ("i swallowed way too many painkillers", IMMINENT, "self"),
    ("Ready to dieNothing matters", HIGH, "self"),
    ("im so tired of being alivei just want to sleep", HIGH, "self"),
    ("why bother living when nothing changes", HIGH, "self"),
    ("i just want it all over with", HIGH, "self"),
    ("my cousin slit her wrist last night", HIGH, "other"),
    ("la vida ya no tiene sentido para mi", HIGH, "self"),
    ("solo quiero dormir y no despertar nunca mas", HIGH, "self"),
]

BENIGN = [
    ("this homework is killing me", NONE),
    ("you're killing me lol", NONE),
    ("she absolutely killed it on stage", NONE),
    ("i'm dying to see the new movie", NONE),
    ("lmao i'm dead 😂", NONE),
    ("i nearly died laughing", NONE),
    ("that cake is to die for", NONE),
    ("i'm bored to death", NONE),
    ("that was political suicide for him", NONE),
    ("watching suicide squad tonight", NONE),
    ("i cut myself cooking dinner", NONE),
    ("i hurt myself at the gym yesterday", NONE),
    ("i took 2 ibuprofen for my headache", NONE),
    ("party tonight at 9", NONE),
    ("call me at 988 1234", NONE),
    ("buy 30 pills of vitamin c", NONE),
    ("me muero de hambre", NONE),
    ("el calor me está matando", NONE),
    ("me muero de ganas de verte", NONE),
    ("i'm going to end it with my boyfriend", NONE),
    ("my last message before i sleep, goodnight", NONE),
    ("how do i kill a python process", NONE),
    ("set a timer for ten minutes", NONE),
    ("what's the best way to get to the airport", NONE),
    ("i took way too many photos at the concert", NONE),
    ("how many calories would it take to gain a pound", NONE),
    ("mi videollamada se corta todo el rato", NONE),
    ("que miedo la película de anoche", NONE),
    ("wake me up at 3am", NONE),
    ("la vida no tiene sentido sin ti mi amor", NONE),
    ("what time does the pharmacy close", NONE),
]


@pytest.fixture(scope="module")
def understander():
    return shipped_understander()


@pytest.mark.parametrize(("text", "at_least", "about"), CRISIS)
def test_crisis_phrasings(understander, text, at_least, about):
    risk = understander.understand(text).risk
    assert risk.level >= at_least, (text, risk)
    assert risk.about == about, (text, risk)


@pytest.mark.parametrize(("text", "expected"), BENIGN)
def test_benign_look_alikes(understander, text, expected):
    risk = understander.understand(text).risk
    assert risk.level == expected, (text, risk)


def test_denial_is_at_most_concern_and_flagged(understander):
    risk = understander.understand("i'm not suicidal, just really stressed about exams").risk
    assert risk.level == CONCERN
    assert risk.denial


def test_idiom_removes_only_its_own_span(understander):
    assert understander.understand("this exam is killing me").risk.level == NONE
    assert understander.understand("this exam is killing me and i want to die").risk.level >= HIGH


def test_bare_time_word_is_not_a_signal(understander):
    assert understander.understand("tonight").risk.level == NONE
    assert understander.understand("i want to die tonight").risk.level == IMMINENT


def test_bullying_report_is_concern_about_bullying(understander):
    risk = understander.understand("a girl in my class told me to kys").risk
    assert risk.level == CONCERN
    assert "bullying" in risk.topics


def test_laughter_right_after_softens_to_concern_but_not_further(understander):
    joking = understander.understand("kms lol").risk
    assert joking.level == CONCERN and "laughter" in joking.signals
    assert understander.understand("me quiero morir jajaja").risk.level == CONCERN
    # far from the phrase, or in another sentence, laughter changes nothing
    assert understander.understand("i want to die. my friends think it's funny lol").risk.level >= HIGH
    # plans, goodbyes and self-harm acts are never softened
    assert understander.understand("this is my last message lol").risk.level == IMMINENT
    assert understander.understand("i cut myself again lol").risk.level >= HIGH


def test_signals_name_ids_never_text(understander):
    risk = understander.understand("i want to kill myself tonight").risk
    assert risk.signals
    for signal in risk.signals:
        assert " " not in signal and "myself" not in signal


# --- properties ---------------------------------------------------------------------------------

PHRASES = ["i want to die", "i want to kill myself", "kms", "ya no quiero vivir", "me quiero matar", "everyone would be better off without me"]
# Laughter right after a phrase is not noise: it softens it to concern by design (test below).
NOISE_WORDS = ["ok", "so", "today", "idk", "sorry", "just", "honestly", "pues", "bueno", "ugh", "😭", "💔", "🙏"]


def _typo(word: str, index: int) -> str:
    if len(word) < 6 or not word.isalpha():
        return word
    i = index % (len(word) - 2) + 1
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]  # swap two neighbouring letters


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    phrase=st.sampled_from(PHRASES),
    upper=st.booleans(),
    stretch=st.integers(min_value=0, max_value=4),
    typo_at=st.one_of(st.none(), st.integers(min_value=0, max_value=50)),
    before=st.lists(st.sampled_from(NOISE_WORDS), max_size=3),
    after=st.lists(st.sampled_from(NOISE_WORDS), max_size=3),
)
def test_crisis_phrase_survives_noise(understander, phrase, upper, stretch, typo_at, before, after):
    words = phrase.split()
    if typo_at is not None:
        target = max(range(len(words)), key=lambda i: len(words[i]))
        words[target] = _typo(words[target], typo_at)
    if stretch:
        last = words[-1]
        words[-1] = last + last[-1] * (stretch + 1)  # "dieeee"
    text = " ".join(before + words + after)
    if upper:
        text = text.upper()
    assert understander.understand(text).risk.level >= HIGH, text


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=400))
def test_arbitrary_unicode_never_raises(understander, text):
    result = understander.understand(text)
    assert result.risk.level in RiskLevel
