"""The school calendar as schools publish it: iCalendar (.ics) files and published calendar URLs.

What is understood, and how (the README's calendar section says the same for administrators):

- **Kinds.** Each VEVENT is read by its CATEGORIES, else by the words of its SUMMARY, in English,
  Spanish and the common words of a few more languages, and by the school's own words (settings
  `closure_words`, `term_markers`): a closure (no school: "No School", "Student Free Day",
  "Christmas Day", "Vacaciones", "Feiertag"…), an exam week, an early dismissal, a grading
  period (a span, or a marker such as "End of Quarter 1", "Report cards", "Fin del trimestre":
  its last day ends the period), a term, or nothing (left out, and listed).
- **Terms are spans.** From a start marker ("First Day for Students", "Term 1 starts", "Inicio
  de curso") to the next end marker ("Last Day of School", "Term 1 ends", "Fin de curso"), or
  one event lasting at least two weeks ("Fall Semester"). A one-day event is never a term
  ("Early Dismissal - Semester Chg"); without any term span, no day is "outside term".
- **Holiday lists.** Imported with `holidays=True` (`--holidays`; Google's public-holiday feeds
  by their address), every all-day event is a closure, except Google's "Observance" entries.
- **Days are the school's.** A time in UTC or another zone is converted to the school's time
  zone before its day is taken; a floating time is the school's own (or the calendar's
  X-WR-TIMEZONE). An all-day event's DTEND is exclusive.
- **Repeating events** (RRULE, RDATE, EXDATE, and RECURRENCE-ID overrides) become one row per
  day they fall on, from a year before the import to two years after it (recurring-ical-events,
  one event at a time).
- **Quirks accepted, each listed in the report:** events without a UID (an id is derived from
  the title and dates), an all-day event whose DTEND has a time (read as its date), Outlook's
  all-day events written as midnight times, a UID repeated (the later copy is kept), a second
  calendar appended to the file (read too), a file cut short (the unfinished event at the end
  is left out), lines folded without the leading space, lines that are not UTF-8 (read as
  Windows-1252), blank lines, a byte-order mark, unknown time zones (read as the school's).
- **Refused, naming the line and the event, importing nothing:** a file that is not iCalendar
  (a web page, a PDF, binary data: never echoed back), an event without DTSTART, an unreadable
  date or property, DTEND before DTSTART, an event that never ends before the next begins,
  binary data inside the file. Text from the file is shown only cleaned and clipped.

The file is read event by event (`parse_calendar`): each VEVENT's lines are collected and handed
to the `icalendar` library on their own, and reading stops at the first error, so memory stays
flat whatever the file's size. An event the words leave out is checked by a quick reading of its
dates; every other is parsed by icalendar. Rows are stored per source (a file's name, a URL, or
"roster" for academicSessions.csv, `core.school.sessions`): importing again replaces that source's
rows and reports only real changes; `dry_run` reports without saving. Terms and grading periods
from the roster win over a calendar's (`core.schedule.policy.load_calendars`).

A calendar imported by URL is remembered (`calendarfeed`) and `reimport_calendars` (scheduled by
`serve`) reads it again daily; a failed fetch or an unreadable file keeps the last good calendar.
"""

from __future__ import annotations

import hashlib
import io
import logging
import re
import unicodedata
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Engine

from core.domain.models import DEFAULT_TIMEZONE, CalendarKind
from core.domain.settings import Key, Pairs, SettingError, SettingsCatalog, Words
from core.domain.store import Store, Tx, as_moment

if TYPE_CHECKING:  # icalendar is imported where a calendar is read: a process that reads none keeps 4 MB less
    import icalendar

log = logging.getLogger(__name__)

TERM_MIN_DAYS = 14  # an event this long (or longer) with a term's words is a term; shorter never
IMPLIED_TERM_DAYS = 200  # an end marker this soon after a term's end ends the next term (semester 2 has no start)
EXPAND_BACK = timedelta(days=366)  # repeating events: the days from a year before the import…
EXPAND_AHEAD = timedelta(days=731)  # …to two years after it
MAX_OCCURRENCES = 1000  # days one repeating event may give
LISTED = 40  # lines of one kind in a report; `companion calendar show` lists them all
KEPT_TITLES = 500  # distinct titles of left-out events remembered for the report
TITLE_LENGTH = 300
DAILY = timedelta(days=1)  # a calendar by URL is read again this long after a good read…
RETRY_AFTER = timedelta(hours=1)  # …and this long after a failed one
FETCH_TIMEOUT = 30  # seconds
MAX_FEED_BYTES = 100 * 1024 * 1024
ROSTER_SOURCE = "roster"  # the source of the rows from academicSessions.csv
DEFAULT_SOURCE = "calendar"  # a calendar imported from bytes with no name

LABELS = {CalendarKind.term: "term", CalendarKind.grading_period: "grading period", CalendarKind.holiday: "closure",
          CalendarKind.exam_week: "exam week", CalendarKind.early_dismissal: "early dismissal"}
PLURALS = {CalendarKind.term: "terms", CalendarKind.grading_period: "grading periods",
           CalendarKind.holiday: "closures", CalendarKind.exam_week: "exam weeks",
           CalendarKind.early_dismissal: "early dismissals"}


# -- the school's own words (settings) ---------------------------------------------------------------


@dataclass(frozen=True)
class Markers(Pairs):
    """Phrases that mark a term's start or end, or a grading period's end: "Opening Day=start, Closing Day=end"."""

    expects = 'pairs of a phrase and start, end or grading, such as "Opening Day=start, Closing Day=end"'

    def parse(self, text: str) -> dict[str, str]:
        pairs = super().parse(text)
        for phrase, what in pairs.items():
            if what.lower() not in ("start", "end", "grading"):
                raise SettingError(self.expects)
            pairs[phrase] = what.lower()
        return pairs


SETTINGS = (
    Key("closure_words", Words(), [], "calendar events whose title or category holds one of these words are closures "
                                      "(no school), besides the built-in words"),
    Key("term_markers", Markers(), {}, "calendar event titles that start or end a term, or end a grading period "
                                       '("Opening Day=start, Closing Day=end, Notes=grading")'),
)
CATALOG = SettingsCatalog(SETTINGS)


# -- words ------------------------------------------------------------------------------------------


APOSTROPHES = re.compile(r"['’‘`´]")
SPACES = re.compile(r"[\s\-_/|·•–—:,;.()\[\]!?&+*\"]+")


def normalize(text: str) -> str:
    """Lower case, without accents, apostrophes or dashes, one space between words: what the words are matched on."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(char for char in text if not unicodedata.combining(char))
    return SPACES.sub(" ", APOSTROPHES.sub("", text.casefold())).strip()


class Phrases:
    """Whole phrases found among a text's words (a plural "s" allowed), words ending in one of `suffixes` (German
    "Herbstferien"), and phrases in scripts written without spaces anywhere. Set look-ups, not one long regex:
    hundreds of phrases cost a few microseconds a title."""

    def __init__(self, phrases: Iterable[str], suffixes: Iterable[str] = ()):
        self.words: set[tuple[str, ...]] = set()
        self.anywhere: list[str] = []
        for phrase in {normalize(phrase) for phrase in phrases} - {""}:
            if phrase.isascii():
                words = tuple(phrase.split())
                self.words.update((words, (*words[:-1], words[-1] + "s")))
            else:
                self.anywhere.append(phrase)
        self.longest = max((len(words) for words in self.words), default=0)
        self.suffixes = tuple(normalize(suffix) for suffix in suffixes)
        self.suffixes += tuple(suffix + "s" for suffix in self.suffixes)

    def __bool__(self) -> bool:
        return bool(self.words or self.anywhere or self.suffixes)

    def search(self, text: str) -> bool:
        """Does normalized `text` hold one of the phrases?"""
        if self.anywhere and not text.isascii() and any(phrase in text for phrase in self.anywhere):
            return True
        words = text.split()
        for start in range(len(words)):
            for length in range(1, min(self.longest, len(words) - start) + 1):
                if tuple(words[start:start + length]) in self.words:
                    return True
        return bool(self.suffixes) and any(word.endswith(self.suffixes) for word in words)


def _phrases(phrases: Iterable[str], suffixes: Iterable[str] = ()) -> Phrases | None:
    found = Phrases(phrases, suffixes)
    return found if found else None


CLOSURE_PHRASES = (
    # English: what a district, a trust or a state school writes
    "no school", "no classes", "no class", "no students", "no pupils", "student free", "students free", "pupil free",
    "non student day", "non attendance day", "students not in attendance", "school closed", "schools closed",
    "closed", "closure", "holiday", "vacation", "break", "recess", "day off", "days off", "half term", "inset day",
    "inset", "teacher workday", "teacher work day", "teacher planning day", "teacher only day", "teacher in service",
    "in service day", "inservice day", "staff development day", "school development day",
    "professional development day", "pd day", "bank holiday", "public holiday",
    # named public holidays
    "new years day", "martin luther king", "mlk day", "presidents day", "washingtons birthday", "good friday",
    "easter monday", "easter sunday", "memorial day", "juneteenth", "independence day", "labor day", "labour day",
    "columbus day", "indigenous peoples day", "veterans day", "thanksgiving", "christmas day", "christmas eve",
    "boxing day", "st stephens day", "anzac day", "australia day", "kings birthday", "queens birthday",
    "canada day", "victoria day", "remembrance day", "family day", "waitangi day", "lunar new year",
    "chinese new year", "diwali", "deepavali", "eid", "eid al fitr", "eid al adha", "hari raya", "vesak",
    "rosh hashanah", "yom kippur", "cesar chavez day",
    # Spanish
    "festivo", "dia festivo", "feriado", "vacaciones", "receso", "sin clases", "no lectivo", "dia no lectivo",
    "no hay clases", "asueto", "suspension de clases", "puente", "descanso", "navidad", "ano nuevo", "dia de reyes",
    "reyes magos", "semana santa", "viernes santo", "jueves santo", "dia del trabajo", "dia del trabajador",
    "dia de la independencia", "dia de la hispanidad", "fiesta nacional", "todos los santos", "dia de muertos",
    "inmaculada concepcion", "dia de la constitucion", "dia del maestro",
    # French, German, Portuguese, Italian, Dutch
    "ferie", "jour ferie", "vacances", "conge", "journee pedagogique", "pas de cours", "pas decole", "noel",
    "jour de lan", "lundi de paques",
    "toussaint", "lundi de pentecote", "ascension", "fete du travail", "fete nationale", "armistice",
    "feiertag", "ferien", "schulfrei", "unterrichtsfrei", "bruckentag", "weihnachten", "weihnachtstag", "neujahr",
    "karfreitag", "ostermontag", "pfingstmontag", "christi himmelfahrt", "tag der arbeit", "tag der deutschen einheit",
    "reformationstag", "allerheiligen", "fronleichnam",
    "ferias escolares", "sem aulas", "natal", "ano novo", "carnaval", "sexta feira santa", "tiradentes",
    "dia do trabalho", "vacanze", "natale", "capodanno", "pasquetta", "ferragosto", "epifania",
    "festa della repubblica",
    "vakantie", "feestdag", "kerstmis", "paasmaandag", "koningsdag", "bevrijdingsdag", "geen school", "studiedag",
    # Japanese, Chinese, Korean
    "休校", "休業", "祝日", "休日", "振替休日", "冬休み", "夏休み", "春休み", "放假", "假期", "休假", "春节", "国庆",
    "공휴일", "휴일", "방학", "휴업",
)
CLOSURE = _phrases(CLOSURE_PHRASES, suffixes=("ferien", "feiertag", "feiertage", "vakantie", "ferie"))
SEGMENTS = re.compile(r"\s[-–—:|/]\s|[()\[\];,]")  # the parts of a title: "Day after Thanksgiving - No School"
# Words after which a closure's words say when, not what: "Students return from Winter Break".
CLOSURE_CONNECTOR = re.compile(r"\b(?:before|prior to|ahead of|after|following|from|return|returns|returning|resume|"
                               r"resumes|antes de|previo a|despues de|tras|regreso de|vuelta de|vor|nach|avant|apres|"
                               r"retour de)\b")
# A closure's words in the title of an event that happens on a school day: "Holiday Concert".
EVENT_NOUNS = re.compile(r"\b(?:concerts?|party|parties|programs?|programmes?|performances?|shows?|assembly|fairs?|"
                         r"sales?|bazaar|markets?|dances?|luncheon|lunch|breakfast|dinner|potluck|celebrations?|"
                         r"parade|meetings?|practices?|games?|match|tournament|camps?|clubs?|workshops?|drive|"
                         r"fundraiser|gala|ceremony|festival|movie|trip|spirit|sing along|activity|activities|"
                         r"concierto|festival)\b")
BEFORE_BREAK = re.compile(r"\b(?:before|prior to|ahead of|antes de|previo a)\b(?!.*\bsummer\b).*\b(?:break|holiday|"
                          r"holidays|vacation|recess|vacaciones|receso)\b")
EXAM = re.compile(r"\b(?:exams?|examinations?|final exams?|midterm exams?|midterms|mid term exams?|mock exams?|"
                  r"regents|gcses?|examen|examenes|prufung|prufungen|partiels|testing week|"
                  r"(?:semester|term|winter|spring|fall|autumn|summer|quarter|trimester|course|senior|school) finals|"
                  r"finals (?:week|day|days|schedule))\b|^finals\b")
EARLY = re.compile(r"\b(?:early (?:dismissal|release|out|closing|closure)s?|minimum days?|half days?|noon dismissal|"
                   r"shortened days?|\d{1,2}(?: \d\d)? ?(?:am|pm)? dismissal|salida (?:temprana|anticipada)|"
                   r"jornada reducida|media jornada|sortie anticipee|closes early)\b")
_TERM = (r"(?:(?:fall|autumn|spring|summer|winter|first|second|third|fourth|1st|2nd|3rd|4th) )?"
         r"(?:school year|academic year|school|classes|class|term|semester|trimester|instruction|(?:all )?students|"
         r"student|pupils)(?: \d+)?")
_NOT_A_TIME = r"\b(?! (?:at|@) )"  # "School starts at 10" is a late start, not a term's
TERM_START = re.compile(
    rf"\bfirst day (?:of|for) (?:the )?{_TERM}\b|\b{_TERM} (?:begins|starts|start|begin|commences|opens){_NOT_A_TIME}"
    rf"|\b(?:start|beginning|begin|commencement) of (?:the )?{_TERM}\b"
    r"|\b(?:inicio|comienzo|principio) (?:de|del) (?:las |los |la )?(?:curso|clases|semestre|ano escolar|ciclo escolar|"
    r"periodo escolar|trimestre)\b|\bprimer dia de (?:clases|curso|escuela|colegio)\b|\b(?:comienzan|empiezan|inician) "
    r"(?:las )?clases\b|\bregreso a clases\b|\brentree\b|\bdebut des cours\b"
    r"|\b(?:schulbeginn|schulanfang|unterrichtsbeginn|erster schultag)\b")
TERM_END = re.compile(
    rf"\blast day (?:of|for) (?:the )?{_TERM}\b|\b{_TERM} (?:ends|end|finishes|concludes|closes){_NOT_A_TIME}"
    rf"|\bend of (?:the )?{_TERM}\b"
    r"|\bfin (?:de|del) (?:las |los |la )?(?:curso|clases|semestre|ano escolar|ciclo escolar|periodo escolar|"
    r"trimestre)\b"
    r"|\bultimo dia de (?:clases|curso|escuela|colegio)\b|\b(?:terminan|finalizan|acaban) (?:las )?clases\b"
    r"|\bfin des cours\b|\bfin de lannee scolaire\b|\b(?:letzter schultag|unterrichtsende|schuljahresende)\b")
_GRADING = (r"(?:(?:first|second|third|fourth|1st|2nd|3rd|4th) )?(?:quarter|marking period|grading period|nine weeks|"
            r"9 weeks|six weeks|reporting period|report period|trimester|q[1-4])(?: \d+)?")
GRADING_END = re.compile(
    rf"\bend of (?:the )?{_GRADING}\b|\b{_GRADING} ends\b|\breport cards?\b"
    r"|\bfin (?:de la|del) (?:evaluacion|trimestre|bimestre|periodo)\b"
    r"|\bentrega de (?:notas|boletines|calificaciones)\b"
    r"|\bboletin(?:es)?\b|\bzeugnis(?:se|ausgabe)?\b|\bbulletins?\b")
NOT_GRADING = re.compile(r"\b(?:progress reports?|interim reports?|interims|mid quarter|midterm reports?)\b")
GROUP_ONLY = re.compile(r"\b(?:teachers?|staff|faculty|seniors?|graduat\w*|kindergarten|pre ?k|profesores|docentes|"
                        r"maestros|12th grade|grade 12|year 1[23])\b")
GRADING_START = re.compile(rf"\b(?:start|beginning|begin|first day) of (?:the )?{_GRADING}\b"
                           rf"|\b{_GRADING} (?:begins|starts)\b"
                           r"|\binicio (?:de la|del) (?:evaluacion|bimestre)\b")
GRADING = re.compile(r"\b(?:grading periods?|marking periods?|quarters?|nine weeks|9 weeks|reporting periods?|"
                     r"evaluacion|evaluaciones|bimestre|q[1-4])\b")
TERM = re.compile(r"\b(?:terms?|semesters?|trimesters?|school year|academic year|semestre|trimestre|curso escolar|"
                  r"ciclo escolar|ano escolar|schuljahr|halbjahr|annee scolaire)\b")
# How Google's holiday calendars describe a day that is marked but not a day off ("Observance"; in some
# languages "Gedenktag", "Observancia", "Conmemoración").
OBSERVANCE = re.compile(r"^\s*(?:observance|gedenktag|observancia|conmemoracion)\b")
HOLIDAY_LIST_NAME = _phrases(("holidays", "public holidays", "bank holidays", "feiertage", "festivos", "feriados",
                              "jours feries", "祝日", "공휴일", "节假日"))


@dataclass(frozen=True)
class SchoolWords:
    """A school's own words (settings `closure_words`, `term_markers`), ready to match."""

    closures: Phrases | None = None
    markers: tuple[tuple[Phrases, str], ...] = ()

    @classmethod
    def of(cls, closure_words: Iterable[str] = (), term_markers: dict[str, str] | None = None) -> "SchoolWords":
        markers = tuple((pattern, what) for phrase, what in (term_markers or {}).items()
                        if (pattern := _phrases([phrase])) is not None)
        return cls(_phrases(closure_words), markers)


NO_WORDS = SchoolWords()


@dataclass(frozen=True)
class Reading:
    """What an event's words say: the kind of row it gives (or None), and whether it starts or ends a term."""

    kind: str | None = None
    term: str | None = None  # "start" or "end": a term marker
    why: str | None = None  # why it gives nothing, when the words nearly did

    def __bool__(self) -> bool:
        return self.kind is not None or self.term is not None


@lru_cache(maxsize=4096)  # a calendar repeats its categories and many of its titles
def read_words(text: str, words: SchoolWords = NO_WORDS, title: bool = True) -> Reading:
    """What `text` (an event's title, or its categories with `title=False`) says the event is."""
    whole = text
    text = normalize(text)
    if not text:
        return Reading()
    for pattern, what in words.markers:
        if pattern.search(text):
            return Reading(CalendarKind.grading_period) if what == "grading" else Reading(term=what)
    if words.closures is not None and words.closures.search(text):
        return Reading(CalendarKind.holiday)
    if EXAM.search(text):
        return Reading(CalendarKind.exam_week)
    term = None
    if not BEFORE_BREAK.search(text):
        term = "start" if TERM_START.search(text) else "end" if TERM_END.search(text) else None
    if term and GROUP_ONLY.search(text):
        term = None  # "Last Day for Seniors", "First Day for Teachers": not the school's term
    if NOT_GRADING.search(text):
        return Reading(why="a progress report, not the end of a grading period")
    if GRADING_END.search(text):
        return Reading(CalendarKind.grading_period, term)
    if EARLY.search(text):
        return Reading(CalendarKind.early_dismissal, term)
    if term:
        return Reading(term=term)
    parts = [normalize(part) for part in SEGMENTS.split(whole)] if SEGMENTS.search(whole) else [text]
    for part in parts:  # "Day after Thanksgiving - No School": each part of the title on its own
        when = CLOSURE_CONNECTOR.search(part)
        what = part[:when.start()] if when else part
        if CLOSURE.search(what) and not (title and EVENT_NOUNS.search(what)):
            return Reading(CalendarKind.holiday)
    if GRADING_START.search(text):
        return Reading(why="a grading period's start (only its end is used)")
    if GRADING.search(text):
        return Reading(CalendarKind.grading_period)
    if TERM.search(text):
        return Reading(CalendarKind.term)
    return Reading()


def read_event_words(categories: list[str], summary: str, words: SchoolWords = NO_WORDS) -> Reading:
    """An event's reading: its categories first, else its title."""
    by_category = read_words(" / ".join(categories), words, title=False)
    return by_category if by_category else read_words(summary, words)


def classify(categories: list[str], summary: str, words: SchoolWords = NO_WORDS) -> str | None:
    """The kind an event's words give (a term for a term's words: whether it is one depends on its length)."""
    reading = read_event_words(categories, summary, words)
    return reading.kind or (CalendarKind.term if reading.term else None)


# -- rows and the report ----------------------------------------------------------------------------


class CalendarError(Exception):
    """A calendar that cannot be imported: nothing from it was stored."""


class FetchError(CalendarError):
    """A calendar URL that could not be read."""


@dataclass(frozen=True)
class SchoolDay:
    """One row of the `calendarevent` table: a kind, a title and its days (the last one included)."""

    uid: str
    kind: str
    title: str
    starts_on: date
    ends_on: date  # inclusive
    repeats: bool = False

    def stored(self) -> tuple:
        return self.kind, self.title, self.starts_on, self.ends_on


@dataclass
class Changes:
    """What storing a source's rows changed."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    removed_titles: list[str] = field(default_factory=list)


@dataclass
class CalendarReport:
    """What an import understood and did, for the administrator (and the log of `serve`)."""

    school: str
    source: str | None = None
    label: str = "calendar"
    added: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0
    kinds: Counter = field(default_factory=Counter)
    rows: list[SchoolDay] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # titles not recognised, each once
    left_out: dict[str, list[str]] = field(default_factory=dict)  # why → titles
    notes: list[str] = field(default_factory=list)  # every quirk accepted, and what else the admin should know
    repeating: list[str] = field(default_factory=list)  # titles of repeating events that were expanded
    grading_period_ends: list[tuple[str, date]] = field(default_factory=list)
    removed_titles: list[str] = field(default_factory=list)
    events: int = 0  # events read
    dry_run: bool = False

    def count(self, changes: Changes) -> None:
        self.added, self.updated, self.removed, self.unchanged = (changes.added, changes.updated, changes.removed,
                                                                  changes.unchanged)
        self.removed_titles = changes.removed_titles

    def lines(self) -> list[str]:
        """The report as plain lines: counts, then what was understood, left out and accepted."""
        kinds = ", ".join(f"{count} {PLURALS.get(kind, kind) if count != 1 else LABELS.get(kind, kind)}"
                          for kind, count in sorted(self.kinds.items())) or "nothing to store"
        where = f" from {shown_source(self.source)}" if self.source else ""
        lines = [f"{self.label} of {self.school}{where}: {self.added} added, {self.updated} updated, "
                 f"{self.removed} removed, {self.unchanged} unchanged ({kinds})"]
        if self.dry_run:
            lines.append("  dry run: nothing was saved")
        for kind in (CalendarKind.term, CalendarKind.grading_period, CalendarKind.holiday, CalendarKind.exam_week,
                     CalendarKind.early_dismissal):
            rows = sorted((row for row in self.rows if row.kind == kind), key=lambda row: (row.starts_on, row.title))
            for row in rows[:LISTED]:
                if kind == CalendarKind.grading_period:
                    lines.append(f"  grading period ends {row.ends_on}: {clean(row.title)} "
                                 "(report-card reflection the next school day)")
                else:
                    lines.append(f"  {LABELS[kind]} {span_text(row.starts_on, row.ends_on)}: {clean(row.title)}")
            if len(rows) > LISTED:
                lines.append(f"  … and {len(rows) - LISTED} more {PLURALS[kind]} (`companion calendar show`)")
        lines += _titles("left out, not a term, grading period, closure, exam week or early dismissal", self.ignored)
        for why, titles in self.left_out.items():
            lines += _titles(f"left out, {why}", titles)
        lines += _titles("removed, no longer in the calendar", self.removed_titles)
        lines += [f"  accepted: {note}" if not note.startswith("note:") else f"  {note}" for note in self.notes]
        return lines


def _titles(label: str, titles: list[str]) -> list[str]:
    if not titles:
        return []
    shown = ", ".join(repr(clean(title)) for title in titles[:LISTED])
    more = f" and {len(titles) - LISTED} more" if len(titles) > LISTED else ""
    return [f"  {label}: {shown}{more}"]


def span_text(first: date, last: date) -> str:
    return f"{first}" if first == last else f"{first} – {last}"


def clean(text: Any, limit: int = 80) -> str:
    """Text from a file, safe to print: no control characters or odd bytes, on one line, clipped."""
    text = "".join(char if char.isprintable() else " " for char in str(text))
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[:limit - 1] + "…"


def shown_source(source: str) -> str:
    """A source as it is shown: a URL without what may be secret in it (a private feed's key, its query)."""
    if "://" not in source:
        return source
    parts = urllib.parse.urlsplit(source)
    segments = [segment for segment in parts.path.split("/") if segment]
    tail = f"/…/{segments[-1]}" if len(segments) > 1 else f"/{segments[0]}" if segments else ""
    port = f":{parts.port}" if parts.port else ""  # never the user and password a URL may carry
    return clean(f"{parts.scheme}://{parts.hostname or ''}{port}{tail}", 120)


# -- reading a file, event by event -----------------------------------------------------------------

CONTENT_LINE = re.compile(rb"([A-Za-z0-9-]+)[;:]")
BINARY = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
DATE_VALUE = re.compile(r"\d{8}")
DATETIME_VALUE = re.compile(r"\d{8}T\d{6}Z?")
SIMPLE_PARAMS = re.compile(r"(?:;(?:VALUE=DATE|VALUE=DATE-TIME|TZID=[^;:\"]+))*")
KEPT = {b"UID", b"SUMMARY", b"CATEGORIES", b"DTSTART", b"DTEND", b"DURATION", b"RRULE", b"RDATE", b"EXDATE",
        b"EXRULE", b"RECURRENCE-ID", b"STATUS", b"X-MICROSOFT-CDO-ALLDAYEVENT"}


@dataclass
class _Raw:
    """One event's lines as collected (only the properties read), before icalendar sees them."""

    line: int  # where BEGIN:VEVENT is
    lines: list[bytes] = field(default_factory=list)
    numbers: dict[str, int] = field(default_factory=dict)  # the line of each property (its first), for errors
    props: dict[bytes, list[tuple[str, str]]] = field(default_factory=dict)  # name → (params, value) as text

    def add(self, name: bytes, line: bytes, decode: Callable[[bytes], str], number: int = 0) -> None:
        text = decode(line)
        self.numbers.setdefault(name.decode("ascii"), number)
        self.lines.append(line if line.isascii() else text.encode())  # icalendar reads UTF-8
        head, value = _split_value(text)
        self.props.setdefault(name, []).append((head[len(name):], value))

    def extend(self, name: bytes, line: bytes, decode: Callable[[bytes], str]) -> None:
        """A line folded without its leading space: part of the line before."""
        text = decode(line.strip())
        self.lines[-1] += b" " + text.encode()
        params, value = self.props[name][-1]
        self.props[name][-1] = (params, f"{value} {text}")

    def first(self, name: bytes) -> str:
        values = self.props.get(name)
        return values[0][1] if values else ""

    @property
    def summary(self) -> str:
        return _unescape(self.first(b"SUMMARY")).strip()

    @property
    def uid(self) -> str:
        return self.first(b"UID").strip()

    def categories(self) -> list[str]:
        found = []
        for _params, value in self.props.get(b"CATEGORIES", []):
            found += [_unescape(part).strip() for part in re.split(r"(?<!\\),", value) if part.strip()]
        return found

    def name(self) -> str:
        """How an error names the event: its UID and title, cleaned."""
        return f"event {clean(self.uid, 60) or '(no UID)'} {clean(self.summary, 60)!r}"


def _on(raw: _Raw, prop: str) -> str:
    number = raw.numbers.get(str(prop).upper())
    return f" on line {number}" if number else ""


def _split_value(text: str) -> tuple[str, str]:
    """A content line's name and parameters, and its value (the first colon outside quotes divides them)."""
    if '"' not in text:
        head, _, value = text.partition(":")
        return head, value
    quoted = False
    for index, char in enumerate(text):
        if char == '"':
            quoted = not quoted
        elif char == ":" and not quoted:
            return text[:index], text[index + 1:]
    return text, ""


def _unescape(value: str) -> str:
    return re.sub(r"\\([\\;,nN])", lambda m: "\n" if m.group(1) in "nN" else m.group(1), value)


@dataclass
class Parsed:
    """What a calendar file says, as rows to store, with everything left out and every quirk accepted."""

    rows: dict[str, SchoolDay] = field(default_factory=dict)
    markers: list[tuple[date, str, str, str]] = field(default_factory=list)  # (day, start|end, title, uid)
    ignored: Counter = field(default_factory=Counter)
    ignored_more: int = 0
    left_out: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    repeating: list[str] = field(default_factory=list)
    events: int = 0
    name: str | None = None  # X-WR-CALNAME

    def leave_out(self, why: str, title: str) -> None:
        titles = self.left_out.setdefault(why, [])
        if title not in titles and len(titles) < KEPT_TITLES:
            titles.append(title)

    def ignore(self, title: str) -> None:
        if title in self.ignored or len(self.ignored) < KEPT_TITLES:
            self.ignored[title] += 1
        else:
            self.ignored_more += 1


class _Calendar:
    """Reads one calendar file line by line and hands each VEVENT to icalendar on its own."""

    def __init__(self, zone: ZoneInfo, today: date, holidays: bool, words: SchoolWords):
        self.zone, self.holidays, self.words = zone, holidays, words
        self.kept = KEPT | {b"DESCRIPTION"} if holidays else KEPT  # a holiday list's descriptions mark observances
        self.window = (today - EXPAND_BACK, today + EXPAND_AHEAD)
        self.parsed = Parsed()
        self.floating_zone: ZoneInfo | None = None  # X-WR-TIMEZONE: the zone of floating times
        self.counts: Counter = Counter()  # quirks by name
        self.overridden: set[str] = set()  # "UID#day" rows a RECURRENCE-ID event replaced
        self.first_lines: dict[str, int] = {}  # a quirk's first line, for the report
        self.cut: dict[str, date] = {}  # repeating events cut at the window's end
        self.seen_uids: set[str] = set()

    # -- the file's lines

    def read(self, stream: IO[bytes]) -> Parsed:
        state, raw, depth, name = "start", None, 0, b""
        component_line = 0
        timezone_lines: list[bytes] = []
        previous_kept = False
        for number, line in _logical_lines(stream, self.counts):
            if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]
                self.quirk("bom", number)
            if not line or line.isspace():
                if state != "start":
                    self.quirk("blank", number)
                continue
            if state == "start":
                self._check_start(line, number)
                state = "calendar"
                continue
            if BINARY.search(line):
                where = f" (in the {raw.name()} that begins on line {raw.line})" if raw is not None else ""
                raise CalendarError(f"line {number}{where}: not text (control characters): is this a binary file?")
            upper = line.strip().upper() if line[:3].upper() in (b"BEG", b"END") else b""
            if state == "event":
                if upper == b"END:VEVENT" and depth == 0:
                    self._event(raw)
                    state, raw = "calendar", None
                elif upper.startswith(b"BEGIN:"):
                    if upper == b"BEGIN:VEVENT" and depth == 0:
                        raise CalendarError(f"line {raw.line}: {raw.name()}: it has no END:VEVENT before the next "
                                            f"event begins on line {number}")
                    depth += 1
                elif upper.startswith(b"END:"):
                    if upper == b"END:VCALENDAR":
                        raise CalendarError(f"line {raw.line}: {raw.name()}: it has no END:VEVENT before "
                                            f"END:VCALENDAR on line {number}")
                    depth = max(depth - 1, 0)
                elif depth == 0:
                    match = CONTENT_LINE.match(line)
                    if match is None:  # a line folded without its leading space
                        self.quirk("fold", number)
                        if previous_kept:
                            raw.extend(name, line, self.decode)
                        continue
                    name = match.group(1).upper()
                    previous_kept = name in self.kept
                    if previous_kept:
                        raw.add(name, line, self.decode, number)
                continue
            if state == "timezone":
                timezone_lines.append(line)
                if upper == b"END:VTIMEZONE":
                    self._timezone(timezone_lines, component_line)
                    state = "calendar"
                continue
            if state == "skip":
                if upper.startswith(b"BEGIN:"):
                    depth += 1
                elif upper.startswith(b"END:"):
                    depth -= 1
                    if depth == 0:
                        state = "calendar"
                continue
            if state == "after":
                if upper == b"BEGIN:VCALENDAR":
                    self.quirk("second", number)
                    state = "calendar"
                else:
                    self.quirk("trailing", number)
                continue
            # state == "calendar"
            if upper == b"BEGIN:VEVENT":
                state, raw, depth, previous_kept = "event", _Raw(number), 0, False
                self.parsed.events += 1
            elif upper == b"BEGIN:VTIMEZONE":
                state, timezone_lines, component_line = "timezone", [line], number
            elif upper == b"END:VCALENDAR":
                state = "after"
            elif upper == b"BEGIN:VCALENDAR":
                self.quirk("nested", number)
            elif upper.startswith(b"BEGIN:"):
                state, depth = "skip", 1
                self.counts["other " + clean(upper[6:].decode("ascii", "replace"), 20).lower()] += 1
            elif CONTENT_LINE.match(line) is None:
                self.quirk("fold", number)
            else:
                self._calendar_property(line)
        if state == "start":
            raise CalendarError("not a readable iCalendar file: the file is empty")
        if state == "event":
            title = f" ({clean(raw.summary, 60)!r})" if raw.summary else ""
            self.parsed.notes.append(f"the file ends inside the event that begins on line {raw.line}{title}: it was "
                                     "left out (the file looks cut short)")
            self.parsed.events -= 1
        elif state in ("calendar", "timezone", "skip"):
            self.parsed.notes.append("the file ends without END:VCALENDAR (it may be cut short; every complete event "
                                     "was read)")
        self._pair_terms()
        self._notes()
        return self.parsed

    def _check_start(self, line: bytes, number: int) -> None:
        if line.strip().upper() == b"BEGIN:VCALENDAR":
            return
        head = line.lstrip()[:16].lower()
        if head.startswith((b"\xff\xfe", b"\xfe\xff")):
            what = "it is UTF-16 text; save it as UTF-8"
        elif head.startswith((b"<!doctype", b"<html", b"<?xml", b"<head", b"<")):
            what = "it looks like a web page (HTML) or XML; for a published calendar use its iCal (.ics) address"
        elif head.startswith(b"%pdf"):
            what = "it is a PDF document"
        elif head.startswith(b"pk\x03\x04"):
            what = "it is a ZIP archive (an .xlsx or .docx file?)"
        elif BINARY.search(line[:200]) or b"\xef\xbf\xbd" in line.decode("utf-8", "replace").encode()[:200]:
            what = "it is not text"
        elif line.strip().upper() == b"BEGIN:VEVENT":
            what = "it starts with an event, not with BEGIN:VCALENDAR"
        else:
            what = f"line {number} should be BEGIN:VCALENDAR"
        raise CalendarError(f"not a readable iCalendar file: {what}")

    def decode(self, line: bytes) -> str:
        try:
            return line.decode("utf-8")
        except UnicodeDecodeError:
            self.counts["latin"] += 1
            return line.decode("cp1252", errors="replace")

    def quirk(self, name: str, number: int) -> None:
        self.counts[name] += 1
        self.first_lines.setdefault(name, number)

    def _calendar_property(self, line: bytes) -> None:
        head, value = _split_value(self.decode(line))
        name = head.split(";")[0].upper()
        if name == "X-WR-CALNAME":
            self.parsed.name = _unescape(value).strip()
        elif name == "X-WR-TIMEZONE":
            try:
                self.floating_zone = ZoneInfo(value.strip())
            except (ZoneInfoNotFoundError, ValueError):
                self.parsed.notes.append(f"X-WR-TIMEZONE {clean(value, 40)!r} is not a time zone: floating times are "
                                         f"read as the school's ({self.zone.key})")

    def _timezone(self, lines: list[bytes], number: int) -> None:
        """A VTIMEZONE: icalendar reads it, so that events naming its TZID find it."""
        import icalendar

        try:
            icalendar.Component.from_ical(b"\r\n".join(lines) + b"\r\n")
        except Exception as error:  # noqa: BLE001 - icalendar raises many kinds; the line is what matters
            raise CalendarError(f"line {number}: the time zone that begins here cannot be read "
                                f"({clean(error, 80)})") from None

    # -- one event

    def _event(self, raw: _Raw) -> None:
        parsed = self.parsed
        status = raw.first(b"STATUS").strip().upper()
        if not raw.uid:
            self.quirk("no uid", raw.line)
        if not self.holidays and b"RECURRENCE-ID" not in raw.props:
            reading = read_event_words(raw.categories(), raw.summary, self.words)
            if not reading and not reading.why and self._quick_dates_ok(raw):
                if status != "CANCELLED":
                    parsed.ignore(raw.summary or raw.uid or "(untitled)")
                return
        event = self._parse(raw)
        summary = str(event.get("SUMMARY", "")).strip()
        title = summary or raw.uid or "(untitled)"
        uid = raw.uid or self._derived_uid(raw)
        first, last = self._span_or_fail(event, raw)
        if status == "CANCELLED":
            self.parsed.leave_out("cancelled", title)
            if "RECURRENCE-ID" in event:
                self._override(event, uid, None, first, last, raw)
            return
        all_day = not isinstance(event.decoded("DTSTART"), datetime) or self._outlook_all_day(event)
        if self.holidays and all_day:
            if OBSERVANCE.search(normalize(str(event.get("DESCRIPTION", "")))):
                parsed.leave_out("an observance in the holiday list, not a day off", title)
                return
            reading = Reading(CalendarKind.holiday)
        else:
            reading = read_event_words(_categories(event), summary, self.words)
        if "RECURRENCE-ID" in event:
            self._override(event, uid, reading, first, last, raw, title)
            return
        if "RRULE" in event or "RDATE" in event:
            if not reading:
                parsed.ignore(title)
                return
            self._expand(event, uid, reading, title, raw)
            return
        if uid in self.seen_uids:
            self.quirk("repeated uid", raw.line)
        self.seen_uids.add(uid)
        self._place(uid, reading, title, first, last)

    def _place(self, uid: str, reading: Reading, title: str, first: date, last: date, repeats: bool = False) -> None:
        """Turn one event (or one day of a repeating one) into a row, a term marker, or a line of the report."""
        parsed = self.parsed
        if reading.term:
            parsed.markers.append((first if reading.term == "start" else last, reading.term, title, uid))
        if reading.kind is None:
            if reading.why:
                parsed.leave_out(reading.why, title)
            elif not reading.term:
                parsed.ignore(title)
            return
        if reading.kind == CalendarKind.term and (last - first).days + 1 < TERM_MIN_DAYS:
            parsed.leave_out(f"shorter than {TERM_MIN_DAYS} days, so not a term (a term is a span: from its start "
                             "to its end marker, or one event of two weeks or more)", title)
            return
        parsed.rows[uid] = SchoolDay(uid, reading.kind, title[:TITLE_LENGTH], first, last, repeats)

    def _parse(self, raw: _Raw) -> icalendar.Component:
        import icalendar

        block = b"BEGIN:VEVENT\r\n" + b"\r\n".join(raw.lines) + b"\r\nEND:VEVENT\r\n"
        try:
            event = icalendar.Component.from_ical(block)
        except Exception as error:  # noqa: BLE001 - icalendar raises ValueError and others for a bad line
            raise CalendarError(f"line {raw.line}: {raw.name()}: it cannot be read ({clean(error, 80)})") from None
        problems = [f"{prop} is malformed{_on(raw, prop)} ({clean(message, 60)})"
                    for prop, message in getattr(event, "errors", [])]
        if problems:
            raise CalendarError(f"line {raw.line}: {raw.name()}: " + "; ".join(dict.fromkeys(problems)))
        return event

    def _span_or_fail(self, event: icalendar.Component, raw: _Raw) -> tuple[date, date]:
        try:
            return self._span(event, raw)
        except (ValueError, TypeError, KeyError, AttributeError) as error:
            raise CalendarError(f"line {raw.line}: {raw.name()}: {clean(error, 120)}") from None

    def _quick_dates_ok(self, raw: _Raw) -> bool:
        """Are an event's DTSTART and DTEND plainly good (then icalendar need not read an event that is left out)?"""
        starts, ends = raw.props.get(b"DTSTART", []), raw.props.get(b"DTEND", [])
        if len(starts) != 1 or len(ends) > 1 or b"DURATION" in raw.props:
            return False
        values = []
        for params, value in starts + ends:
            value = value.strip()
            if SIMPLE_PARAMS.fullmatch(params.upper()) is None:
                return False
            only_date = "VALUE=DATE" in params.upper() and "DATE-TIME" not in params.upper()
            if DATE_VALUE.fullmatch(value) is None and (only_date or DATETIME_VALUE.fullmatch(value) is None):
                return False
            try:
                date(int(value[:4]), int(value[4:6]), int(value[6:8]))
                if len(value) > 8 and not (int(value[9:11]) < 24 and int(value[11:13]) < 60 and int(value[13:15]) < 61):
                    return False
            except ValueError:
                return False
            values.append((params.upper(), value))
        if len(values) == 2:
            (start_params, start), (end_params, end) = values
            if start_params != end_params or len(start) != len(end) or end < start:
                return False  # icalendar reads it, and says what is wrong
        return True

    def _derived_uid(self, raw: _Raw) -> str:
        key = "|".join((raw.summary, raw.first(b"DTSTART").strip(), raw.first(b"DTEND").strip(),
                        raw.first(b"RECURRENCE-ID").strip()))
        return "derived-" + hashlib.sha1(key.encode()).hexdigest()[:16]

    # -- days

    def _local(self, value: date | datetime, own_zone: bool = False) -> date | datetime:
        """A DATE as it is; a DATE-TIME in the school's time zone (a floating one: as written, or X-WR-TIMEZONE's)."""
        if not isinstance(value, datetime):
            return value
        if value.tzinfo is None:
            if self.floating_zone is None or own_zone:
                return value
            self.counts["floating zone"] += 1
            value = value.replace(tzinfo=self.floating_zone)
        if own_zone:
            return value.replace(tzinfo=None)
        local = value.astimezone(self.zone)
        if value.utcoffset() != local.utcoffset():
            self.counts["converted"] += 1
            if local.date() != value.date():
                self.counts["converted day"] += 1
        return local

    def _outlook_all_day(self, event: icalendar.Component) -> bool:
        return str(event.get("X-MICROSOFT-CDO-ALLDAYEVENT", "")).strip().upper() == "TRUE"

    def _span(self, event: icalendar.Component, raw: _Raw | None = None) -> tuple[date, date]:
        """First and last day of an event in the school's days; raises ValueError saying what is wrong with its dates.

        Counts, once per event, a time read in another zone than it was written in, and one whose day moved.
        """
        before = self.counts["converted"], self.counts["converted day"]
        try:
            return self._days(event)
        finally:
            self.counts["converted"] = before[0] + (self.counts["converted"] > before[0])
            self.counts["converted day"] = before[1] + (self.counts["converted day"] > before[1])

    def _days(self, event: icalendar.Component) -> tuple[date, date]:
        if "DTSTART" not in event:
            raise ValueError("it has no DTSTART")
        start = event.decoded("DTSTART")
        if not isinstance(start, date):
            raise ValueError(f"DTSTART {clean(start, 40)!r} is not a date")
        if isinstance(start, datetime) and start.tzinfo is None and "TZID" in event["DTSTART"].params:
            self.counts["unknown zone"] += 1
        own_zone = self._outlook_all_day(event) and isinstance(start, datetime)
        if own_zone:
            self.counts["outlook all day"] += 1
        if "DTEND" in event:
            end = event.decoded("DTEND")
            if not isinstance(end, date):
                raise ValueError(f"DTEND {clean(end, 40)!r} is not a date")
        elif "DURATION" in event:
            end = start + event.decoded("DURATION")
        else:
            day = self._local(start, own_zone)
            day = day.date() if isinstance(day, datetime) else day
            return day, day  # RFC 5545: a date without an end is that one day
        first, final = self._local(start, own_zone), self._local(end, own_zone)
        first_day = first.date() if isinstance(first, datetime) else first
        if isinstance(first, datetime) != isinstance(final, datetime):
            self.counts["all day end time" if not isinstance(first, datetime) else "timed end date"] += 1
            end_day = final.date() if isinstance(final, datetime) else final
            midnight = not isinstance(final, datetime) or final.time() == time(0)
            last = end_day - timedelta(days=1) if midnight else end_day  # an end at midnight, or a DATE, is exclusive
            if last < first_day and end_day < first_day:
                raise ValueError(f"DTEND {end_day} is before DTSTART {first_day}")
            return first_day, max(last, first_day)
        if final < first:
            end_day = final.date() if isinstance(final, datetime) else final
            raise ValueError(f"DTEND {end_day} is before DTSTART {first_day}")
        # DTEND is exclusive: an all-day event (or one ending at midnight) ends the day before.
        if isinstance(final, datetime):
            exclusive = final.time() == time(0) and final > first
            last = final.date() - timedelta(days=1) if exclusive else final.date()
        else:
            last = final - timedelta(days=1) if final > first else final
        return first_day, max(last, first_day)

    # -- repeating events

    def _expand(self, event: icalendar.Component, uid: str, reading: Reading, title: str, raw: _Raw) -> None:
        import icalendar
        import recurring_ical_events

        calendar = icalendar.Calendar()
        calendar.add_component(event)
        low, high = self.window
        count, days = 0, 0
        try:
            for occurrence in recurring_ical_events.of(calendar).after(low):
                start = occurrence.decoded("DTSTART")
                if (start.date() if isinstance(start, datetime) else start) > high:
                    self.cut[title] = high
                    break
                count += 1
                if count > MAX_OCCURRENCES:
                    self.cut[title] = high
                    break
                first, last = self._span(occurrence)
                key = f"{uid}#{self._occasion(occurrence):%Y%m%d}"
                if key in self.overridden:
                    continue
                self._place(key, reading, title, first, last, repeats=True)
                days += 1
        except CalendarError:
            raise
        except Exception as error:  # noqa: BLE001 - a rule the library cannot follow
            raise CalendarError(f"line {raw.line}: {raw.name()}: its repetition (RRULE, RDATE or EXDATE) cannot be "
                                f"read ({clean(error, 80)})") from None
        self.parsed.repeating.append(title)
        self.counts["repeating days"] += days

    def _occasion(self, component: icalendar.Component) -> date:
        """The day a repeating event's occurrence was first planned on (its RECURRENCE-ID), in the school's days."""
        value = component.decoded("RECURRENCE-ID") if "RECURRENCE-ID" in component else component.decoded("DTSTART")
        local = self._local(value)
        return local.date() if isinstance(local, datetime) else local

    def _override(self, event: icalendar.Component, uid: str, reading: Reading | None, first: date, last: date,
                  raw: _Raw, title: str = "") -> None:
        """One changed (or cancelled) day of a repeating event replaces the day the repetition gave."""
        key = f"{uid}#{self._occasion(event):%Y%m%d}"
        self.overridden.add(key)
        self.parsed.rows.pop(key, None)
        self.counts["overrides"] += 1
        if reading:
            self._place(key, reading, title, first, last, repeats=True)

    # -- terms from their markers

    def _pair_terms(self) -> None:
        """Terms from start and end markers: each start with the next end; an end right after a term starts the next."""
        parsed = self.parsed
        order = {"end": 0, "start": 1}
        opened: tuple | None = None
        previous_end: tuple | None = None
        unpaired: list[str] = []
        for marker in sorted(parsed.markers, key=lambda m: (m[0], order[m[1]])):
            day, what, title, uid = marker
            if what == "start":
                if opened is None:
                    opened = marker
                elif day != opened[0]:
                    unpaired.append(f"{title!r} ({day}: a term began on {opened[0]})")
                continue
            if opened is not None:
                self._term(opened[0], day, f"{opened[2]} … {title}", f"term:{opened[3]}", unpaired)
                opened, previous_end = None, marker
            elif previous_end is not None and TERM_MIN_DAYS < (day - previous_end[0]).days <= IMPLIED_TERM_DAYS:
                self._term(previous_end[0] + timedelta(days=1), day, f"after {previous_end[2]} … {title}",
                           f"term:{previous_end[3]}+", unpaired)
                previous_end = marker
            elif previous_end is None or day != previous_end[0]:
                unpaired.append(f"{title!r} ({day}: no term starts before it)")
        if opened is not None:
            unpaired.append(f"{opened[2]!r} ({opened[0]}: no end of term after it)")
        for line in unpaired:
            parsed.notes.append(f"note: a term marker without its partner, no term from it: {clean(line, 120)}")

    def _term(self, first: date, last: date, title: str, uid: str, unpaired: list[str]) -> None:
        if (last - first).days + 1 < TERM_MIN_DAYS:
            unpaired.append(f"{title!r} ({first} – {last}: shorter than {TERM_MIN_DAYS} days)")
            return
        self.parsed.rows[uid] = SchoolDay(uid, CalendarKind.term, title[:TITLE_LENGTH], first, last)

    # -- the report's list of quirks

    def _notes(self) -> None:
        counts, lines, notes = self.counts, self.first_lines, self.parsed.notes

        def at(name: str) -> str:
            return f" (first on line {lines[name]})" if name in lines else ""

        plural = lambda n, one, many: one if n == 1 else many  # noqa: E731
        if counts["lf"]:
            notes.append("the lines end with LF, not CRLF")
        if counts["bom"]:
            notes.append("the file starts with a byte-order mark: skipped")
        if counts["no uid"]:
            n = counts["no uid"]
            notes.append(f"{n} {plural(n, 'event has', 'events have')} no UID{at('no uid')}: an id was derived from "
                         "the title and dates, so importing again updates rather than duplicates")
        if counts["repeated uid"]:
            notes.append(f"{counts['repeated uid']} UID(s) appear more than once{at('repeated uid')}: the later "
                         "event is kept")
        if counts["all day end time"]:
            notes.append(f"{counts['all day end time']} all-day event(s) have a DTEND with a time: read as its date")
        if counts["timed end date"]:
            notes.append(f"{counts['timed end date']} timed event(s) have an all-day DTEND: read as that (exclusive) "
                         "date")
        if counts["outlook all day"]:
            notes.append(f"{counts['outlook all day']} Outlook all-day event(s) (X-MICROSOFT-CDO-ALLDAYEVENT) written "
                         "as midnight times: their dates are read as written")
        if counts["converted"]:
            moved = counts["converted day"]
            notes.append(f"{counts['converted']} event(s) with times in UTC or another time zone were read in the "
                         f"school's ({self.zone.key})" + (f": {moved} fall on another day there than as written"
                                                          if moved else ""))
        if counts["floating zone"] and self.floating_zone is not None:
            notes.append(f"times without a zone were read in the calendar's X-WR-TIMEZONE ({self.floating_zone.key})")
        if counts["unknown zone"]:
            notes.append(f"{counts['unknown zone']} time(s) name a time zone that is neither known nor in the file: "
                         f"read as the school's ({self.zone.key})")
        if self.parsed.repeating:
            n = len(self.parsed.repeating)
            notes.append(f"{n} repeating {plural(n, 'event', 'events')} (RRULE/RDATE, less EXDATE) gave "
                         f"{counts['repeating days']} days from {self.window[0]} to {self.window[1]}")
        if counts["overrides"]:
            notes.append(f"{counts['overrides']} changed or cancelled day(s) of repeating events (RECURRENCE-ID) "
                         "replace the days the repetition gave")
        for title, until in list(self.cut.items())[:LISTED]:
            notes.append(f"{clean(title, 60)!r} repeats past {until}: its days until then were imported "
                         "(importing again later adds more)")
        if counts["second"]:
            notes.append(f"a second calendar begins on line {lines['second']}: its events were read too")
        if counts["nested"]:
            notes.append(f"BEGIN:VCALENDAR again inside the calendar{at('nested')}: ignored")
        if counts["trailing"]:
            notes.append(f"{counts['trailing']} line(s) after END:VCALENDAR{at('trailing')}: ignored")
        if counts["fold"]:
            notes.append(f"{counts['fold']} line(s) continue the line before without the leading space{at('fold')}: "
                         "read as part of it")
        if counts["latin"]:
            notes.append(f"{counts['latin']} line(s) are not UTF-8: read as Windows-1252")
        if counts["blank"]:
            notes.append(f"{counts['blank']} blank line(s){at('blank')}: skipped")
        others = {name[6:]: count for name, count in counts.items() if name.startswith("other ")}
        if others:
            notes.append("components other than events, not read: "
                         + ", ".join(f"{count} {name}" for name, count in sorted(others.items())))
        name = self.parsed.name
        if name and not self.holidays and HOLIDAY_LIST_NAME is not None and HOLIDAY_LIST_NAME.search(normalize(name)):
            notes.append(f"note: this calendar is named {clean(name, 60)!r}: if it is a list of public holidays, "
                         "import it with --holidays so that every all-day event is a closure")


def _logical_lines(stream: IO[bytes], counts: Counter) -> Iterator[tuple[int, bytes]]:
    """Unfolded content lines (RFC 5545 §3.1, undone on bytes so a split character is whole again), with the
    number of the physical line each starts on. Counts "lf" when the lines end with LF alone."""
    number, start, parts = 0, 0, None
    for physical in stream:
        number += 1
        if number == 1 and physical.endswith(b"\n") and not physical.endswith(b"\r\n"):
            counts["lf"] += 1
        line = physical.rstrip(b"\r\n")
        if b"\r" in line:
            raise CalendarError(f"line {number}: its lines end with a lone CR (an old Mac format): save the file with "
                                "CRLF or LF line ends")
        if parts is not None and line[:1] in (b" ", b"\t"):
            parts.append(line[1:])
            continue
        if parts is not None:
            yield start, parts[0] if len(parts) == 1 else b"".join(parts)
        parts, start = [line], number
    if parts is not None:
        yield start, parts[0] if len(parts) == 1 else b"".join(parts)


def _categories(event: icalendar.Component) -> list[str]:
    """The event's CATEGORIES values, however many CATEGORIES lines it has."""
    found = event.get("CATEGORIES")
    lists = found if isinstance(found, list) else [found] if found is not None else []
    return [str(category) for item in lists for category in getattr(item, "cats", [item])]


def _stream(data: bytes | str | Path | IO[bytes]) -> tuple[IO[bytes], bool]:
    """A binary stream on the calendar, and whether this module opened it (and so closes it)."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(data)), True
    if isinstance(data, (str, Path)):
        return open(data, "rb"), True  # noqa: SIM115 - closed by the caller of _stream
    return data, False


def parse_calendar(data: bytes | str | Path | IO[bytes], zone: ZoneInfo | str = DEFAULT_TIMEZONE,
                   today: date | None = None, holidays: bool = False, words: SchoolWords = NO_WORDS) -> Parsed:
    """Every row a calendar gives for a school in `zone`, what it left out and every quirk; raises CalendarError.

    `data` is the file's bytes, its path, or a binary stream; it is read line by line, each event
    parsed on its own, and reading stops at the first error.
    """
    zone = zone if isinstance(zone, ZoneInfo) else ZoneInfo(zone)
    stream, opened = _stream(data)
    try:
        return _Calendar(zone, today or datetime.now(timezone.utc).date(), holidays, words).read(stream)
    finally:
        if opened:
            stream.close()


# -- storing ----------------------------------------------------------------------------------------


class _DryRun(Exception):
    """Raised inside a transaction to roll a dry run back."""


def replace_source(store: Store, school_id: int, source: str, rows: Iterable[SchoolDay], now: datetime,
                   dry_run: bool = False) -> Changes:
    """Make the school's rows of `source` exactly `rows`: added, updated, removed, and unchanged counted.

    Rows stored before sources were kept (source "") are taken over by the first calendar import.
    A dry run does all of it and rolls it back.
    """
    rows = {row.uid: row for row in rows}
    changes = Changes()
    try:
        with store.transaction() as tx:
            tx.begin()
            if source != ROSTER_SOURCE:
                tx.execute("DELETE FROM calendarevent WHERE school_id = ? AND source = '' AND uid IN "
                           "(SELECT uid FROM calendarevent WHERE school_id = ? AND source = ?)",
                           (school_id, school_id, source))
                tx.execute("UPDATE calendarevent SET source = ? WHERE school_id = ? AND source = ''",
                           (source, school_id))
            known = {uid: (row_id, (kind, title, tx.as_date(starts_on), tx.as_date(ends_on)))
                     for row_id, uid, kind, title, starts_on, ends_on in tx.all(
                         "SELECT id, uid, kind, title, starts_on, ends_on FROM calendarevent "
                         "WHERE school_id = ? AND source = ?", (school_id, source))}
            added, updated = [], []
            for uid, row in rows.items():
                if uid not in known:
                    added.append(row)
                elif known[uid][1] != row.stored():
                    updated.append((known[uid][0], row))
                else:
                    changes.unchanged += 1
            gone = [(row_id, stored[1]) for uid, (row_id, stored) in known.items() if uid not in rows]
            changes.added, changes.updated, changes.removed = len(added), len(updated), len(gone)
            changes.removed_titles = list(dict.fromkeys(title for _, title in gone))
            if gone:
                tx.cursor.executemany(store.sql("DELETE FROM calendarevent WHERE id = ?"),
                                      [(row_id,) for row_id, _ in gone])
            if updated:
                tx.cursor.executemany(store.sql(
                    "UPDATE calendarevent SET kind = ?, title = ?, starts_on = ?, ends_on = ?, updated_at = ? "
                    "WHERE id = ?"),
                    [(row.kind, row.title, tx.day(row.starts_on), tx.day(row.ends_on), tx.ts(now), row_id)
                     for row_id, row in updated])
            if added:
                tx.cursor.executemany(store.sql(
                    "INSERT INTO calendarevent (school_id, source, uid, kind, title, starts_on, ends_on, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                    [(school_id, source, row.uid, row.kind, row.title, tx.day(row.starts_on), tx.day(row.ends_on),
                      tx.ts(now)) for row in added])
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
    return changes


@dataclass(frozen=True)
class School:
    id: int
    name: str
    timezone: str
    sourced_id: str

    def zone(self) -> ZoneInfo:
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            return ZoneInfo(DEFAULT_TIMEZONE)


def find_school(tx: Tx, school: str | int | None) -> School:
    """The school to import into: the one named by sourced id (or id), or the only one there is."""
    columns = "SELECT id, name, timezone, sourced_id FROM school"
    if isinstance(school, int):
        row = tx.one(f"{columns} WHERE id = ?", (school,))
    elif school is not None:
        row = tx.one(f"{columns} WHERE sourced_id = ?", (school,))
        if row is None:
            raise CalendarError(f"no school with sourced id {clean(school, 60)!r}")
    else:
        schools = tx.all(f"{columns} ORDER BY id")
        if len(schools) != 1:
            raise CalendarError(f"{len(schools)} schools on the roster: say which one with --school SOURCED_ID")
        row = schools[0]
    if row is None:
        raise CalendarError(f"no school {school!r}")
    return School(*row)


def school_words(tx: Tx, school_id: int) -> SchoolWords:
    """The school's own closure words and term markers (settings)."""
    values = CATALOG.for_school(tx, school_id)
    return SchoolWords.of(values["closure_words"], values["term_markers"])


def _roster_note(tx: Tx, school_id: int, rows: Iterable[SchoolDay]) -> str | None:
    kinds = {kind for (kind,) in tx.all("SELECT DISTINCT kind FROM calendarevent WHERE school_id = ? AND source = ? "
                                        "AND kind IN (?, ?)", (school_id, ROSTER_SOURCE, CalendarKind.term,
                                                               CalendarKind.grading_period))}
    overridden = {row.kind for row in rows} & kinds
    if not overridden:
        return None
    what = " and ".join(PLURALS[kind] for kind in sorted(overridden, key=lambda kind: kind != CalendarKind.term))
    return (f"note: the roster's academic sessions give this school's {what}: this calendar's are stored "
            "but not used")


def import_calendar(engine: Engine | Store, data: bytes | str | Path | IO[bytes], now: datetime,
                    school: str | int | None = None, *, source: str | None = None, holidays: bool = False,
                    dry_run: bool = False) -> CalendarReport:
    """Read a calendar for a school and make the school's rows of `source` what it says (all or nothing).

    `school` is a sourced id (or a school id; None: the only school). `source` names the calendar
    (a file's name, a URL); importing the same source again reports only what changed.
    """
    store = engine if isinstance(engine, Store) else Store(engine)
    with store.transaction() as tx:
        found = find_school(tx, school)
        words = school_words(tx, found.id)
    zone = found.zone()
    parsed = parse_calendar(data, zone, now.astimezone(zone).date(), holidays, words)
    report = CalendarReport(found.name, source, events=parsed.events, dry_run=dry_run)
    report.rows = sorted(parsed.rows.values(), key=lambda row: (row.starts_on, row.kind, row.title))
    report.ignored = list(parsed.ignored)
    if parsed.ignored_more:
        report.ignored.append(f"{parsed.ignored_more} more events")
    report.left_out, report.notes, report.repeating = parsed.left_out, parsed.notes, parsed.repeating
    if holidays:
        report.notes.insert(0, "note: read as a holiday list: every all-day event is a closure")
    for row in report.rows:
        report.kinds[row.kind] += 1
        if row.kind == CalendarKind.grading_period:
            report.grading_period_ends.append((row.title, row.ends_on))
    report.count(replace_source(store, found.id, source or DEFAULT_SOURCE, report.rows, now, dry_run))
    with store.transaction() as tx:
        note = _roster_note(tx, found.id, report.rows)
    if note:
        report.notes.append(note)
    return report


# -- calendars by URL -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetched:
    """A calendar URL's answer: its bytes (None: not modified since the last read) and its validators."""

    data: bytes | None
    etag: str | None = None
    last_modified: str | None = None


def calendar_url(text: str) -> str | None:
    """`text` as a calendar URL (webcal:// read as https://), or None when it is not an http(s) address."""
    text = text.strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() in ("webcal", "webcals"):
        text = urllib.parse.urlunsplit(("https",) + tuple(parts[1:]))
        parts = urllib.parse.urlsplit(text)
    if parts.scheme.lower() in ("http", "https") and parts.hostname:
        return text
    return None


def is_holiday_feed(url: str) -> bool:
    """Google's public holiday calendars (…#holiday@group.v.calendar.google.com) are holiday lists."""
    unquoted = urllib.parse.unquote(url).lower()
    return "holiday@group.v.calendar.google.com" in unquoted


def fetch_calendar(url: str, etag: str | None = None, last_modified: str | None = None,
                   timeout: float = FETCH_TIMEOUT) -> Fetched:
    """GET a calendar URL (conditionally, when validators are known); raises FetchError saying what went wrong."""
    request = urllib.request.Request(url, headers={"User-Agent": "learning-companion-calendar/1",
                                                   "Accept": "text/calendar, */*;q=0.5"})
    if etag:
        request.add_header("If-None-Match", etag)
    if last_modified:
        request.add_header("If-Modified-Since", last_modified)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) only, checked
            chunks, size = [], 0
            while chunk := response.read(1 << 20):
                size += len(chunk)
                if size > MAX_FEED_BYTES:
                    raise FetchError(f"the calendar is larger than {MAX_FEED_BYTES // (1 << 20)} MB")
                chunks.append(chunk)
            return Fetched(b"".join(chunks), response.headers.get("ETag"), response.headers.get("Last-Modified"))
    except urllib.error.HTTPError as error:
        if error.code == 304:
            return Fetched(None, etag, last_modified)
        raise FetchError(f"the server answered {error.code} {clean(error.reason, 40)}") from None
    except urllib.error.URLError as error:
        raise FetchError(f"the calendar could not be reached ({clean(error.reason, 80)})") from None
    except (TimeoutError, OSError) as error:
        raise FetchError(f"the calendar could not be read ({clean(error, 80)})") from None


def import_url(engine: Engine | Store, url: str, now: datetime, school: str | int | None = None, *,
               holidays: bool = False, dry_run: bool = False,
               fetch: Callable[..., Fetched] = fetch_calendar) -> CalendarReport:
    """Fetch a calendar URL, import it, and remember it for `serve`'s daily re-import (unless a dry run)."""
    address = calendar_url(url)
    if address is None:
        raise CalendarError("not an http(s) or webcal address")
    holidays = holidays or is_holiday_feed(address)
    fetched = fetch(address)
    if fetched.data is None:
        raise FetchError("the server answered 304 Not Modified to a first request")
    store = engine if isinstance(engine, Store) else Store(engine)
    report = import_calendar(store, fetched.data, now, school, source=address, holidays=holidays, dry_run=dry_run)
    if not dry_run:
        with store.transaction() as tx:
            found = find_school(tx, school)
            known = tx.execute("UPDATE calendarfeed SET holidays = ?, next_fetch_at = ?, last_ok_at = ?, "
                               "last_error = NULL, etag = ?, last_modified = ? WHERE school_id = ? AND url = ?",
                               (holidays, tx.ts(now + DAILY), tx.ts(now), fetched.etag, fetched.last_modified,
                                found.id, address)).rowcount
            if not known:
                tx.execute("INSERT INTO calendarfeed (school_id, url, holidays, next_fetch_at, last_ok_at, etag, "
                           "last_modified, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                           (found.id, address, holidays, tx.ts(now + DAILY), tx.ts(now), fetched.etag,
                            fetched.last_modified, tx.ts(now)))
        report.notes.append("note: remembered: `companion serve` reads this calendar again every day")
    return report


@dataclass(frozen=True)
class FeedResult:
    """What one daily re-import of a calendar URL did."""

    feed_id: int
    url: str
    report: CalendarReport | None = None
    error: str | None = None
    not_modified: bool = False


def reimport_calendars(database: Engine | Store, now: datetime,
                       fetch: Callable[..., Fetched] = fetch_calendar) -> list[FeedResult]:
    """Read again every calendar URL that is due (a day after its last good read, an hour after a failed one).

    For `serve` to run every hour or so: each feed is claimed before it is fetched, so several
    processes never read the same one at once. A failed fetch, or a file that cannot be read,
    keeps the last good calendar and is logged with why; a good one is imported like
    `companion calendar import URL`, and its report goes to the log.
    """
    store = database if isinstance(database, Store) else Store(database)
    with store.transaction() as tx:
        due = tx.all("SELECT id, school_id, url, holidays, etag, last_modified, next_fetch_at FROM calendarfeed "
                     "WHERE next_fetch_at <= ? ORDER BY next_fetch_at, id", (tx.ts(now),))
    results = []
    for feed_id, school_id, url, holidays, etag, last_modified, next_fetch_at in due:
        with store.transaction() as tx:
            claimed = tx.execute("UPDATE calendarfeed SET next_fetch_at = ? WHERE id = ? AND next_fetch_at = ?",
                                 (tx.ts(now + RETRY_AFTER), feed_id, next_fetch_at)).rowcount
        if claimed != 1:
            continue  # another process took it
        name = f"calendar feed {feed_id} ({shown_source(url)})"
        try:
            fetched = fetch(url, etag, last_modified)
            if fetched.data is None:
                result = FeedResult(feed_id, url, not_modified=True)
                log.info("%s: not modified since the last read", name)
            else:
                report = import_calendar(store, fetched.data, now, school_id, source=url, holidays=bool(holidays))
                result = FeedResult(feed_id, url, report)
                for line in report.lines():
                    log.info("%s: %s", name, line)
        except CalendarError as error:
            with store.transaction() as tx:
                tx.execute("UPDATE calendarfeed SET last_error = ? WHERE id = ?", (clean(error, 500), feed_id))
            log.warning("%s: %s — the last good calendar is kept; trying again in %s", name, clean(error, 300),
                        RETRY_AFTER)
            results.append(FeedResult(feed_id, url, error=clean(error, 500)))
            continue
        with store.transaction() as tx:
            tx.execute("UPDATE calendarfeed SET next_fetch_at = ?, last_ok_at = ?, last_error = NULL, etag = ?, "
                       "last_modified = ? WHERE id = ?",
                       (tx.ts(now + DAILY), tx.ts(now), fetched.etag or etag, fetched.last_modified or last_modified,
                        feed_id))
        results.append(result)
    return results


# -- what is stored ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Feed:
    id: int
    url: str
    holidays: bool
    next_fetch_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None


@dataclass
class Stored:
    """A school's stored calendar (`companion calendar show`)."""

    school: School
    rows: list[tuple[SchoolDay, str, bool]]  # (row, source, used by the schedule)
    feeds: list[Feed]

    def lines(self, start: date) -> list[str]:
        used = sum(1 for _, _, in_use in self.rows if in_use)
        lines = [f"calendar of {self.school.name} ({self.school.timezone}), from {start}: {len(self.rows)} events"
                 + (f", {len(self.rows) - used} not used" if used != len(self.rows) else "")]
        width = max((len(LABELS.get(row.kind, row.kind)) for row, _, _ in self.rows), default=8)
        for row, source, in_use in self.rows:
            flag = "" if in_use else "  (not used: the roster's academic sessions give these)"
            lines.append(f"  {span_text(row.starts_on, row.ends_on):<23}  {LABELS.get(row.kind, row.kind):<{width}}  "
                         f"{clean(row.title, 70)}  [{shown_source(source) or 'earlier import'}]{flag}")
        if self.feeds:
            lines.append("calendars by URL, read again daily by `companion serve`:")
        for feed in self.feeds:
            state = f"last good read {feed.last_ok_at:%Y-%m-%d %H:%M} UTC" if feed.last_ok_at else "never read"
            if feed.last_error:
                state += f"; last attempt failed: {clean(feed.last_error, 120)} (the last good calendar is kept)"
            kind = ", a holiday list" if feed.holidays else ""
            lines.append(f"  feed {feed.id}: {shown_source(feed.url)}{kind}; {state}")
        return lines


def stored_calendar(engine: Engine | Store, school: str | int | None, start: date) -> Stored:
    """The school's calendar rows that end on or after `start`, and its calendars by URL."""
    store = engine if isinstance(engine, Store) else Store(engine)
    with store.transaction() as tx:
        found = find_school(tx, school)
        rows = tx.all("SELECT uid, kind, title, starts_on, ends_on, source FROM calendarevent WHERE school_id = ? "
                      "AND ends_on >= ? ORDER BY starts_on, kind, title", (found.id, tx.day(start)))
        roster_kinds = {kind for (kind,) in tx.all(
            "SELECT DISTINCT kind FROM calendarevent WHERE school_id = ? AND source = ?", (found.id, ROSTER_SOURCE))}
        feeds = [Feed(feed_id, url, bool(holidays), as_moment(next_at), as_moment(ok_at), error)
                 for feed_id, url, holidays, next_at, ok_at, error in tx.all(
                     "SELECT id, url, holidays, next_fetch_at, last_ok_at, last_error FROM calendarfeed "
                     "WHERE school_id = ? ORDER BY id", (found.id,))]
    shadowed = roster_kinds & {CalendarKind.term, CalendarKind.grading_period}
    listed = [(SchoolDay(uid, kind, title, tx.as_date(first), tx.as_date(last)), source,
               source == ROSTER_SOURCE or kind not in shadowed)
              for uid, kind, title, first, last, source in rows]
    return Stored(found, listed, feeds)


def remove_source(engine: Engine | Store, school: str | int | None, source: str) -> tuple[str, int]:
    """Delete a calendar's rows (by its file name, URL, "roster", or "feed N") and forget its URL; returns
    (the source, rows removed)."""
    store = engine if isinstance(engine, Store) else Store(engine)
    with store.transaction() as tx:
        found = find_school(tx, school)
        if re.fullmatch(r"(?:feed )?\d+", source.strip()):
            row = tx.one("SELECT url FROM calendarfeed WHERE school_id = ? AND id = ?",
                         (found.id, int(source.split()[-1])))
            if row is None:
                raise CalendarError(f"no calendar feed {clean(source, 20)} for {found.name}")
            source = row[0]
        else:
            source = calendar_url(source) or source
        removed = tx.execute("DELETE FROM calendarevent WHERE school_id = ? AND source = ?",
                             (found.id, source)).rowcount
        feeds = tx.execute("DELETE FROM calendarfeed WHERE school_id = ? AND url = ?", (found.id, source)).rowcount
        if not removed and not feeds:
            raise CalendarError(f"nothing stored from {clean(shown_source(source), 80)!r} for {found.name}")
    return source, removed
