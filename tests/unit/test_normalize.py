"""Normalization: what the vocabularies see for what people type."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.nlu.normalize import BOUNDARY, clean
from tests.unit.nlu_support import shipped_understander


@pytest.fixture(scope="module")
def tokens():
    return shipped_understander().tokens


@pytest.mark.parametrize(
    ("typed", "seen"),
    [
        ("I WANT TO DIE", "i want to die"),
        ("i wanna dieeeee", "i want to die"),
        ("killl myself", "kill myself"),
        ("k1ll mys3lf", "kill myself"),
        ("kms", "kill myself"),
        ("im sooo tired", "i am so tired"),
        ("i can't", "i can not"),
        ("i can’t", "i can not"),
        ("ya no quiero vivír", "ya no quiero vivir"),
        ("Mañana", "manana"),
        ("su\u200bicide", "suicide"),
        ("ready to dieNothing matters", "ready to die nothing matters"),
    ],
)
def test_what_the_vocabulary_sees(tokens, typed, seen):
    assert " ".join(t for t in tokens(typed) if t != BOUNDARY) == seen


@pytest.mark.parametrize("text", ["30 pills", "988", "call 741741", "at 3am", "500mg"])
def test_numbers_are_never_read_as_leetspeak(tokens, text):
    assert tokens(text) == text.split()


def test_sentence_ends_are_boundaries(tokens):
    assert tokens("fine. really!") == ["fine", BOUNDARY, "really", BOUNDARY]


def test_joiner_kept_inside_emoji_sequences_only():
    family = "\U0001F468\u200d\U0001F469\u200d\U0001F467"
    assert clean(family) == family
    assert clean("a\u200db") == "ab"


def test_common_words_are_not_corrected_into_vocabulary_words(tokens):
    # "quedarme" (to stay) is one letter from "quemarme" (to burn myself).
    assert "quemarme" not in tokens("quiero quedarme en casa")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_arbitrary_unicode_gives_tokens_without_raising(tokens, text):
    result = tokens(text)
    assert all(isinstance(t, str) and t for t in result)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=300))
def test_intent_scores_stay_in_range(text):
    match = shipped_understander().understand(text).intent
    assert 0.0 <= match.score <= 100.0
    assert match.intent_id is None or match.topics
