"""Days and times in the student's words, in English and Spanish (dateparser does the reading)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from functools import cache

import dateparser
from dateparser.search import search_dates

# Lead-in words dateparser does not need: "by Thursday", "para el jueves", "before Friday".
LEAD_WORDS = re.compile(r"^\s*(by|on|before|until|till|due|para el|para|el|antes del|antes de|hasta el|hasta)\s+",
                        re.IGNORECASE)
TIME_OF_DAY = re.compile(r"^\s*(\d{1,2})(?:[:.h](\d{2}))?\s*(am|pm|a\.m\.|p\.m\.)?\s*$", re.IGNORECASE)


def week_start(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


@cache
def _settings(today: date) -> dict:
    return {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": datetime.combine(today, time(12)),
        "REQUIRE_PARTS": [],
        "RETURN_AS_TIMEZONE_AWARE": False,
    }


def parse_day(words: str, today: date, locale: str) -> date | None:
    """The day `words` names, on or after `today`'s week; None when it names no day."""
    words = LEAD_WORDS.sub("", words.strip())
    if not words:
        return None
    found = dateparser.parse(words, languages=[locale, "en"], settings=_settings(today))
    return found.date() if found else None


def find_day(text: str, today: date, locale: str, day_words: re.Pattern) -> date | None:
    """A day named anywhere in a sentence ("finish the essay by Thursday"), if any.

    dateparser's search also reads numbers and short words as dates ("20 pages", Spanish "mi"),
    so only phrases with a real day word (`day_words`) count.
    """
    try:
        hits = search_dates(text, languages=[locale], settings=_settings(today))
    except Exception:  # dateparser's search can trip over odd input; a goal without a day is fine
        return None
    for phrase, moment in hits or ():
        if day_words.search(phrase) and moment.date() >= today:
            return moment.date()
    return None


def parse_time(words: str) -> time | None:
    """A time of day: 7, 7:30, 7.30, 16h00, 4pm, 4:15 p.m."""
    match = TIME_OF_DAY.match(words)
    if not match:
        return None
    hour, minute = int(match.group(1)), int(match.group(2) or 0)
    suffix = (match.group(3) or "").replace(".", "").lower()
    if suffix == "pm" and hour < 12:
        hour += 12
    elif suffix == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    return time(hour, minute)
