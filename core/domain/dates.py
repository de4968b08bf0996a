"""Days and times in the student's words, in English and Spanish, as they type them on a phone.

The words students use for days ("tmrw", "el finde", "el próximo viernes", "after school") are
read here; dateparser reads the rest ("Dec 3", "3 de diciembre"), relative to the student's own
today and preferring the future. A number that belongs to a duration or a quantity ("20 minutes",
"3 pages", "2 horas") is never a date. dateparser is slow to import: it is loaded on first use,
once per process.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, time, timedelta
from functools import cache, lru_cache

from text_to_num import alpha2digit

# Lead-in words a day or a time does not need: "by Thursday", "para el jueves", "a las 5".
LEAD_WORDS = re.compile(r"^\s*(?:(?:by|on|before|until|till|due|for|no later than|at|around|about|para el|para|"
                        r"el|antes del|antes de|hasta el|hasta|a mas tardar el|a las|a la|las|sobre las|como a las|a eso de las|"
                        r"tipo|like)\s+)+")
# A number with a unit of time or of work: a duration or a quantity, never a day or a time of day.
AMOUNT = re.compile(
    r"\b(?:\d+(?:[.,]\d+)?|an?|half an?|one|un|una|media)\s*(?:-\s*)?"
    r"(?:min|mins|minute|minutes|minuto|minutos|m|h|hr|hrs|hour|hours|hora|horas|sec|secs|seconds|segundos|"
    r"pages?|pgs?|p|paginas?|chapters?|capitulos?|problems?|problemas?|exercises?|ejercicios?|questions?|"
    r"preguntas?|times|veces|words|palabras|laps|vueltas|km|miles|millas|flashcards?|cards|tarjetas|lessons?|"
    r"lecciones|leccion|units?|unidades|unidad|essays?|ensayos?|drafts?|borradores?|reps|sets|songs|canciones|"
    r"books?|libros?|articles?|articulos?|paragraphs?|parrafos?|videos?|points?|puntos|percent|por ?ciento|%)\b")

WEEKDAYS = {  # folded (no accents, lower case) → Monday = 0
    **dict.fromkeys(("monday", "mon", "lunes", "lun"), 0),
    **dict.fromkeys(("tuesday", "tue", "tues", "martes", "mar"), 1),
    **dict.fromkeys(("wednesday", "wed", "weds", "wensday", "wednes", "miercoles", "mie", "mier", "mierc"), 2),
    **dict.fromkeys(("thursday", "thu", "thur", "thurs", "thrusday", "jueves", "jue"), 3),
    **dict.fromkeys(("friday", "fri", "fryday", "viernes", "vie", "vier"), 4),
    **dict.fromkeys(("saturday", "sat", "sabado", "sab"), 5),
    **dict.fromkeys(("sunday", "sun", "domingo", "dom"), 6),
}
# Days named relative to today, as students write them (folded).
RELATIVE_DAYS = {
    **dict.fromkeys(("today", "tonight", "tday", "2day", "this evening", "after school", "hoy", "esta noche",
                     "esta tarde", "hoy mismo", "despues de clase", "despues de clases", "despues de la escuela",
                     "despues del cole", "despues del colegio"), 0),
    **dict.fromkeys(("tomorrow", "tmrw", "tmr", "tmw", "tmrow", "tomoro", "tomorow", "tommorow", "tommorrow",
                     "2moro", "2morrow", "2mrw", "tomz", "manana", "mñn", "mna", "mañana"), 1),
    **dict.fromkeys(("day after tomorrow", "the day after tomorrow", "pasado manana", "pasado"), 2),
}
WEEKEND = ("weekend", "the weekend", "this weekend", "wknd", "weeknd", "finde", "el finde", "este finde",
           "fin de semana", "el fin de semana", "este fin de semana", "el fin")
END_OF_WEEK = ("end of the week", "end of week", "the end of the week", "eow", "fin de la semana",
               "final de la semana", "el final de la semana", "fin de semana laboral")
NEXT_WEEK = ("next week", "la proxima semana", "proxima semana", "la semana que viene", "la siguiente semana",
             "semana que viene")
NEXT = r"(?:next|proximo|proxima|siguiente)"
THIS = r"(?:this|este|esta|this coming|coming)"
DAY_NAME = "|".join(sorted(map(re.escape, WEEKDAYS), key=len, reverse=True))
NAMED_DAY = re.compile(
    rf"^(?:(?P<next>{NEXT})\s+|(?P<this>{THIS})\s+)?(?:el\s+)?(?P<day>{DAY_NAME})"
    rf"(?P<after>\s+(?:next week|de la proxima semana|de la semana que viene|que viene|proximo|next))?$")
IN_DAYS = re.compile(r"^(?:in|en|dentro de)\s+(\d+)\s+(?:days?|dias?)$")
# Inside a sentence only words that cannot be something else count ("mar" is the sea, "pasado" the past).
SENTENCE_WORDS = sorted({*(name for name in WEEKDAYS if len(name) > 4 or name in ("tues", "weds")), *RELATIVE_DAYS,
                         *WEEKEND, *END_OF_WEEK} - {"pasado", "el fin"}, key=len, reverse=True)
DAY_WORD_ANYWHERE = re.compile(
    rf"\b(?:(?:{NEXT}|{THIS})\s+)?(?:el\s+)?(?:{'|'.join(map(re.escape, SENTENCE_WORDS))})\b"
    rf"(?:\s+(?:next week|de la proxima semana|que viene))?")
MORNING_PHRASE = re.compile(r"\b(?:por|en|de|cada|todas las) la manana\b")  # "in the morning", not tomorrow

# A time of day: 7, 7:30, 7.30, 16h00, 4pm, 4:15 p.m., 5 de la tarde, 7 y media, noon, mediodía.
CLOCK = re.compile(r"^(?P<hour>\d{1,2})(?:\s*[:.h]\s*(?P<minute>\d{2}))?\s*(?:hrs|h|hs)?\s*"
                   r"(?P<suffix>am|pm|a m|p m|a\.m\.|p\.m\.|a\.m|p\.m|in the morning|in the afternoon|in the evening|"
                   r"at night|de la manana|de la tarde|de la noche|por la manana|por la tarde|por la noche|"
                   r"en la manana|en la tarde|en la noche|de la madrugada)?$")
HALF_PAST = re.compile(r"^(?:half past|half)\s+(?P<hour>\d{1,2})(?P<rest>.*)$")
Y_MEDIA = re.compile(r"^(?P<hour>\d{1,2})\s+y\s+(?P<part>media|cuarto)(?P<rest>.*)$")
MORNING = ("am", "a m", "a.m.", "a.m", "in the morning", "de la manana", "por la manana", "en la manana",
           "de la madrugada")
NAMED_TIMES = {"noon": time(12), "midday": time(12), "mediodia": time(12), "al mediodia": time(12),
               "after school": time(15, 30), "despues de clase": time(15, 30), "despues de clases": time(15, 30),
               "despues de la escuela": time(15, 30), "before school": time(7, 30), "antes de clase": time(7, 30),
               "antes de clases": time(7, 30), "antes de la escuela": time(7, 30),
               "after dinner": time(19), "despues de cenar": time(19), "despues de la cena": time(19)}
# A bare hour ("5") as a school day has it: afternoon hours are afternoon, morning hours morning;
# 7 could be before school or after dinner, and is asked about.
BARE_HOUR_UNCLEAR = (7,)
SCHOOL_DAY_AFTERNOON = range(1, 7)  # 1 to 6 → 13:00 to 18:00


def week_start(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


def fold(text: str) -> str:
    """Lower case, no accents, no punctuation around the words, single spaces."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    bare = re.sub(r"[¿¡!?,;\"“”'’]+", " ", bare)
    return re.sub(r"\s+", " ", bare).strip(" .")


def numbers_as_digits(text: str, locale: str) -> str:
    """Number words as digits ("twenty minutes" → "20 minutes", "cinco" → "5"), in `locale`."""
    try:
        return alpha2digit(text, "es" if locale == "es" else "en", threshold=0)
    except Exception:  # text2num may refuse an odd mix; the words as typed are still read
        return text


def without_amounts(text: str) -> str:
    """`text` with every duration and quantity taken out ("for 20 minutes", "3 pages")."""
    return re.sub(r"\s+", " ", AMOUNT.sub(" ", text)).strip()


@lru_cache(maxsize=1)
def _dateparser():
    """dateparser, imported on first use (it takes most of a second)."""
    import dateparser
    from dateparser.search import search_dates
    return dateparser, search_dates


@cache
def _settings(today: date) -> dict:
    return {
        "PREFER_DATES_FROM": "future",
        "RELATIVE_BASE": datetime.combine(today, time(12)),
        "REQUIRE_PARTS": ["day"],
        "RETURN_AS_TIMEZONE_AWARE": False,
    }


def _coming(today: date, weekday: int) -> date:
    """The next `weekday` from today on (today counts)."""
    return today + timedelta(days=(weekday - today.weekday()) % 7)


def read_day(words: str, today: date, locale: str, *, strict_next: bool = False) -> list[date]:
    """The day or days `words` may name: none, one, or two when "next Friday" could be either.

    `strict_next` reads "next Friday" as next week's (a button says exactly that).
    """
    folded = LEAD_WORDS.sub("", fold(words))
    if not folded or AMOUNT.search(numbers_as_digits(folded, locale)) and not IN_DAYS.match(
            numbers_as_digits(folded, locale)):
        return []
    if folded in RELATIVE_DAYS:
        return [today + timedelta(days=RELATIVE_DAYS[folded])]
    if folded in WEEKEND:
        return [today if today.weekday() >= 5 else _coming(today, 5)]
    if folded in END_OF_WEEK:
        return [_coming(today, 4)]
    if folded in NEXT_WEEK:
        return [week_start(today) + timedelta(days=7)]
    if match := IN_DAYS.match(numbers_as_digits(folded, locale)):
        return [today + timedelta(days=int(match.group(1)))]
    if match := NAMED_DAY.match(folded):
        weekday = WEEKDAYS[match.group("day")]
        this_week = week_start(today) + timedelta(days=weekday)
        next_week = this_week + timedelta(days=7)
        if (match.group("after") or "").strip() in ("next week", "de la proxima semana", "de la semana que viene"):
            return [next_week]
        if match.group("next") or match.group("after"):
            if strict_next or this_week <= today:
                return [next_week if this_week > today or strict_next else _coming(today + timedelta(days=1), weekday)]
            return [this_week, next_week]  # later this week, or the week after: ask
        return [_coming(today, weekday)]
    if not any(ch.isdigit() for ch in folded) and not re.search(r"[a-z]{3,}", folded):
        return []
    dateparser, _ = _dateparser()
    try:
        found = dateparser.parse(folded, languages=[locale, "en"] if locale != "en" else ["en"],
                                 settings=_settings(today))
    except Exception:  # dateparser can trip over odd input: no day, and the step asks again
        return []
    return [found.date()] if found else []


def parse_day(words: str, today: date, locale: str) -> date | None:
    """The day `words` names, on or after `today`'s week; None when it names no day (or two)."""
    found = read_day(words, today, locale)
    return found[0] if len(found) == 1 else None


def find_day(text: str, today: date, locale: str, day_words: re.Pattern) -> date | None:
    """A day named anywhere in a sentence ("finish the essay by Thursday"), if any.

    Durations and quantities are taken out first ("practice for 20 minutes by Friday" is due on
    Friday, not the 20th). dateparser's search also reads short words as dates (Spanish "mi"), so
    only phrases with a real day word (`day_words`) count. "next Friday" when it could be either
    week names no day: the flow asks.
    """
    folded = MORNING_PHRASE.sub(" ", without_amounts(numbers_as_digits(fold(text), locale)))
    for match in DAY_WORD_ANYWHERE.finditer(folded):
        found = read_day(match.group(0), today, locale)
        return found[0] if len(found) == 1 else None
    try:
        _, search_dates = _dateparser()
        hits = search_dates(folded, languages=[locale], settings=_settings(today))
    except Exception:  # dateparser's search can trip over odd input; a goal without a day is fine
        return None
    for phrase, moment in hits or ():
        if day_words.search(phrase) and moment.date() >= today and not AMOUNT.search(phrase):
            return moment.date()
    return None


def read_time(words: str, locale: str = "en") -> list[time]:
    """The time or times of day `words` may be: none, one, or two when a bare hour is unclear (7)."""
    folded = LEAD_WORDS.sub("", fold(words).replace("a. m.", "am").replace("p. m.", "pm"))
    folded = re.sub(r"(\d)\s*-?ish\b", r"\1", folded)  # "5ish"
    if folded in NAMED_TIMES:
        return [NAMED_TIMES[folded]]
    folded = numbers_as_digits(folded, locale)
    if AMOUNT.search(folded) and not CLOCK.match(folded):
        return []
    minute_extra = 0
    if match := HALF_PAST.match(folded):
        folded, minute_extra = match.group("hour") + match.group("rest"), 30
    elif match := Y_MEDIA.match(folded):
        folded, minute_extra = match.group("hour") + match.group("rest"), 30 if match.group("part") == "media" else 15
    match = CLOCK.match(folded.strip())
    if not match:
        return []
    hour, minute = int(match.group("hour")), int(match.group("minute") or 0) + minute_extra
    suffix = match.group("suffix")
    if hour > 23 or minute > 59 or (suffix and hour > 12):
        return []
    if suffix:
        morning = suffix in MORNING
        hour = hour % 12 + (0 if morning else 12)
        return [time(hour, minute)]
    if match.group("minute") is None and hour <= 12:  # a bare hour: as the school day has it
        if hour in BARE_HOUR_UNCLEAR:
            return [time(hour, minute), time(hour + 12, minute)]
        if hour in SCHOOL_DAY_AFTERNOON:
            hour += 12
        elif hour == 0:
            return []
    elif 1 <= hour < 7 and match.group("minute") is not None and not folded.startswith("0"):
        hour += 12  # "5:30" after school, not before dawn
    return [time(hour, minute)]


def parse_time(words: str, locale: str = "en") -> time | None:
    """A time of day: 7:30, 16h00, 4pm, "5 de la tarde", "after school"; None when none (or unclear)."""
    found = read_time(words, locale)
    return found[0] if len(found) == 1 else None
