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

    @classmethod
    def load(cls, data: dict) -> "Lexicon":
        """`data`: the merged tables; a section no folder brings is empty (it matches nothing)."""
        smart, dates_ = data.get("smart", {}), data.get("dates", {})
        lead_in = sorted(data.get("plan", {}).get("lead_in", []), key=len, reverse=True)
        return cls(measurable=_words(smart.get("measurable", [])), vague=_words(smart.get("vague", [])),
                   plan_lead_in=re.compile(r"^(?:(?:" + "|".join(map(re.escape, lead_in)) + r")\b[\s,]*)+"
                                           if lead_in else NOTHING, re.IGNORECASE),
                   day_words=_words(dates_.get("day_words", [])), safety=data.get("safety", {}),
                   commands=data.get("commands", {}))

    def plan_action(self, text: str) -> str:
        """The action of an if–then plan, without the "then I will" the template already says."""
        return self.plan_lead_in.sub("", text.strip()).strip() or text.strip()


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

