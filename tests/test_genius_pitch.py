"""The pitch feedback against labelled driving questions (English and Spanish): each is "a project"
or "a quick search" (yes/no, or a single fact). The cues were tuned on `driving_questions.jsonl`;
`driving_questions_heldout.jsonl` (a fifth, set apart before tuning) was never looked at while tuning.
Also: interests become buttons whose payloads fit Telegram's 64 bytes, whatever a student wrote.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from core.features import REGISTRY
from core.features.genius import MAX_PASSIONS, split_interests
from core.features.genius.pitch import cues_of, quick_search

DATA = Path(__file__).parent / "data" / "genius"


def labelled(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / name).read_text("utf-8").splitlines() if line.strip()]


def disagreements(rows: list[dict]) -> list[tuple[str, str]]:
    found = []
    for row in rows:
        cues = cues_of(REGISTRY.catalog.lexicon(row["locale"]).tables["pitch"])
        said = "search" if quick_search(cues, row["q"]) else "project"
        if said != row["label"]:
            found.append((row["q"], row["label"]))
    return found


def test_the_labelled_set_is_large_enough_and_in_both_languages():
    rows = labelled("driving_questions.jsonl") + labelled("driving_questions_heldout.jsonl")
    assert len(rows) >= 50
    assert {row["locale"] for row in rows} == {"en", "es"}
    assert {row["label"] for row in rows} == {"project", "search"}
    assert len(labelled("driving_questions_heldout.jsonl")) * 5 >= len(rows)


@pytest.mark.parametrize("name, least", [("driving_questions.jsonl", 0.90), ("driving_questions_heldout.jsonl", 0.80)])
def test_the_pitch_feedback_agrees_with_the_labels(name, least):
    rows = labelled(name)
    wrong = disagreements(rows)
    assert 1 - len(wrong) / len(rows) >= least, wrong


@pytest.mark.parametrize("locale, question, search", [
    ("en", "how tall is mount everest", True), ("en", "How might we make lunch lines shorter?", False),
    ("es", "¿Quién inventó la bombilla?", True), ("es", "¿Cómo podríamos ahorrar agua en la escuela?", False),
    ("en", "How does a car engine work?", True), ("en", "How does music affect our mood?", False),
    ("en", "Is it possible to build a solar phone charger?", False), ("en", "Can I learn guitar in 6 weeks?", False),
    ("es", "¿Cómo funciona un motor?", True), ("es", "¿Es posible construir un cargador solar?", False),
])
def test_typical_questions(locale, question, search):
    assert quick_search(cues_of(REGISTRY.catalog.lexicon(locale).tables["pitch"]), question) is search


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_any_interests_give_at_most_six_short_payloads(text):
    items = split_interests(text)
    assert len(items) <= MAX_PASSIONS and len(set(items)) == len(items)
    assert all(item and item == item.strip(" .") for item in items)
    assert all(len(f"p{n}".encode()) <= 64 for n in range(len(items)))  # the payload never carries the words


@pytest.mark.parametrize("text, items", [
    ("drawing, robots and music", ["drawing", "robots", "music"]),
    ("dibujo, robots y música", ["dibujo", "robots", "música"]),
    ("soccer; video games & anime", ["soccer", "video games", "anime"]),
    ("historia e inglés", ["historia", "inglés"]),
])
def test_interests_are_split_on_commas_and_and(text, items):
    assert split_interests(text) == items


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["en", "es"]), st.text(max_size=300))
def test_any_typed_question_gets_an_answer_and_an_open_opener_always_makes_it_a_project(locale, words):
    cues = cues_of(REGISTRY.catalog.lexicon(locale).tables["pitch"])
    assert isinstance(quick_search(cues, words), bool)
    opener = {"en": "How can I ", "es": "¿Cómo puedo "}[locale]
    assert quick_search(cues, opener + words) is False
