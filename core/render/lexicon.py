"""Words the bot listens for, per locale (each prompt folder's `lexicon.toml`): commands, SMART hints, safety.

The safety words are compiled by `core.render.safety.SafetyWatch`; a `Lexicon` only carries its locale's table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from core.domain import dates

NUMBER = re.compile(r"\d")
NOTHING = r"(?!)"  # a pattern that never matches


def _words(items: list[str]) -> re.Pattern:
    """One pattern matching any of `items` as whole words, case-insensitively (none: never)."""
    if not items:
        return re.compile(NOTHING)
    return re.compile(r"\b(?:" + "|".join(re.escape(item) for item in items) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Lexicon:
    """One locale's listening words, gathered from every prompt folder's `lexicon.toml`."""

    measurable: re.Pattern
    vague: re.Pattern
    plan_lead_in: re.Pattern
    day_words: re.Pattern
    safety: dict[str, list[str]]
    commands: dict[str, list[str]]  # command name → the words that also call it ("metas" → goals)
    tables: dict  # every section as read, for a feature's own words (genius hour's [pitch] cues)

    @classmethod
    def load(cls, data: dict) -> "Lexicon":
        """`data`: the merged tables; a section no folder brings is empty (it matches nothing)."""
        smart, dates_ = data.get("smart", {}), data.get("dates", {})
        lead_in = sorted(data.get("plan", {}).get("lead_in", []), key=len, reverse=True)
        return cls(measurable=_words(smart.get("measurable", [])), vague=_words(smart.get("vague", [])),
                   plan_lead_in=re.compile(r"^(?:(?:" + "|".join(map(re.escape, lead_in)) + r")\b[\s,]*)+"
                                           if lead_in else NOTHING, re.IGNORECASE),
                   day_words=_words(dates_.get("day_words", [])), safety=data.get("safety", {}),
                   commands=data.get("commands", {}), tables=data)

    def plan_action(self, text: str) -> str:
        """The action of an if–then plan, without the "then I will" the template already says."""
        return self.plan_lead_in.sub("", text.strip()).strip() or text.strip()

    def if_then(self, obstacle: str, action: str) -> IfThen:
        """The two halves of an if–then plan in good grammar, from the student's words.

        "when i get bored" → "I get bored"; "i will take a break." → "take a break": the leading
        "if/when/si/cuando" and "I will/voy a" the template already says are taken off, with final
        punctuation; a lone "i" becomes "I". `ready_verb` says whether the action starts with a verb
        the template's "I will"/"voy a" fits (Spanish "dejarlo" does, "lo dejo" does not).
        """
        plan = self.tables.get("plan", {})
        cut_obstacle = _leading(plan.get("obstacle_lead_in", []))
        first_verb = re.compile(plan.get("verb_start", NOTHING), re.IGNORECASE)
        obstacle_words = _sentence(cut_obstacle.sub("", _clean(obstacle)) or _clean(obstacle))
        action_words = _sentence(self.plan_action(_clean(action)))
        return IfThen(obstacle_words, action_words, bool(first_verb.match(action_words)))

    def is_vague(self, text: str) -> bool:
        """A goal too vague to plan with: "idk", one word ("school"), or only vague words ("be better")."""
        words = re.findall(r"[\w']+", text.casefold())
        unsure = _words([dates.fold(word) for word in self.tables.get("understand", {}).get("unsure", [])])
        if not words or unsure.search(dates.fold(text)):
            return True
        if len(words) == 1 and not NUMBER.search(text):
            return True
        empty = set(self.tables.get("smart", {}).get("empty", []))
        return len(words) <= 3 and all(word in empty or self.vague.fullmatch(word) for word in words)


@dataclass(frozen=True)
class IfThen:
    """An if–then plan's halves, ready for its template."""

    obstacle: str
    action: str
    ready_verb: bool  # the action starts with a verb that follows "I will" / "voy a"


def _leading(items: list[str]) -> re.Pattern:
    """Any of `items` (repeated) at the start, with the spaces and commas after them."""
    items = sorted(items, key=len, reverse=True)
    return re.compile(r"^(?:(?:" + "|".join(map(re.escape, items)) + r")\b[\s,]*)+" if items else NOTHING,
                      re.IGNORECASE)


def _clean(text: str) -> str:
    """No surrounding space, quotes or final punctuation."""
    return re.sub(r"\s+", " ", text).strip().strip("\"'“”‘’").rstrip(" .!¡?¿…,;:").strip()


def _sentence(text: str) -> str:
    """Mid-sentence case: a lone "i" is "I" ("im" is "I'm"); a capital that opened the student's
    sentence is lowered unless the word is in capitals or is "I"."""
    text = re.sub(r"\bi\b(?!')", "I", text)
    text = re.sub(r"\b(?:i'm|im)\b", "I'm", text, flags=re.IGNORECASE)
    text = re.sub(r"\bi'(ll|ve|d)\b", r"I'\1", text)
    first = text.split(" ", 1)[0] if text else ""
    if first and first not in ("I", "I'm", "I'll", "I've", "I'd") and not first.isupper():
        text = text[0].lower() + text[1:]
    return text


@dataclass(frozen=True)
class SmartCheck:
    """Gentle feedback on a goal: is it specific, measurable, time-bound?"""

    specific: bool
    measurable: bool
    due_on: date | None

    @property
    def time_bound(self) -> bool:
        return self.due_on is not None

    @property
    def all_good(self) -> bool:
        return self.specific and self.measurable and self.time_bound


def check_goal(words: Lexicon, text: str, today: date, locale: str) -> SmartCheck:
    """Gentle SMART feedback on a goal in the student's words."""
    measurable = bool(NUMBER.search(text) or words.measurable.search(text))
    specific = len(text.split()) >= 4 and (measurable or not words.vague.search(text))
    return SmartCheck(specific=specific, measurable=measurable, due_on=dates.find_day(text, today, locale, words.day_words))

