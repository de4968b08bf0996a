"""Is a driving question worth a project, or would a quick search answer it?

A genius-hour question should be open: "How can I design a ramp that is safe for beginners?".
One a search engine answers in a line — a yes/no question ("Is Pluto a planet?") or a single
fact ("How tall is the Eiffel Tower?") — gets gentle feedback. The cues are words of each
locale's `genius/lexicon.toml` ([pitch]); `tests/data/genius/` holds the labelled questions they
were tuned on, and a held-out part they were never tuned on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from core.engine.flow import plain

PUNCTUATION = re.compile(r"[¿?¡!.,;:\"'()]+")


def _anywhere(words: list[str]) -> re.Pattern:
    return re.compile(r"\b(?:" + "|".join(re.escape(plain(w)) for w in words) + r")\b") if words else re.compile(r"(?!)")


@dataclass(frozen=True)
class PitchCues:
    """One locale's cues (the [pitch] table of its lexicon)."""

    open: re.Pattern  # anywhere: the question asks how to make or change something
    closed: re.Pattern  # at the start: a yes/no question, or one fact
    making: re.Pattern
    people: re.Pattern
    short: int

    @classmethod
    def from_table(cls, table: dict) -> "PitchCues":
        closed = table.get("closed", [])
        return cls(open=_anywhere(table.get("open", [])),
                   closed=re.compile(r"^(?:" + "|".join(re.escape(plain(w)) for w in closed) + r")\b")
                   if closed else re.compile(r"(?!)"),
                   making=_anywhere(table.get("making", [])), people=_anywhere(table.get("people", [])),
                   short=int(table.get("short", 5)))


@cache
def _cues(frozen: tuple) -> PitchCues:
    return PitchCues.from_table({key: list(value) if isinstance(value, tuple) else value for key, value in frozen})


def cues_of(table: dict) -> PitchCues:
    """The cues of a lexicon's [pitch] table (compiled once per table)."""
    return _cues(tuple(sorted((key, tuple(value) if isinstance(value, list) else value)
                              for key, value in table.items())))


def quick_search(cues: PitchCues, question: str) -> bool:
    """True when a quick search would answer `question` (yes/no, or a single fact)."""
    text = re.sub(r"\s+", " ", PUNCTUATION.sub(" ", plain(question))).strip()
    if cues.open.search(text):
        return False
    if cues.making.search(text) and cues.people.search(text):
        return False
    if cues.closed.match(text):
        return True
    return len(text.split()) <= cues.short
