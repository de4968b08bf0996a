"""A school's competencies (standards) and students' mastery levels, as administrators load them.

- `companion competencies import FILE.csv`: columns `code,title,subject,description`, optional
  `grade_levels`. Headers are read as schools write them ("Code", "Grade Levels"), with commas,
  semicolons or tabs, in UTF-8 (with or without a BOM) or Windows-1252. Importing again updates
  by code and reports what changed; a competency left out of the file stays (mastery refers to it).
  `grade_levels` holds either the grades a competency is for ("6-8", "9, 10") or its own grade
  mapping ("A=exceeds, B=meets"), which then wins over the school's for that competency.
- `companion mastery set STUDENT CODE LEVEL [--by TEACHER]` and `companion mastery import FILE.csv`
  (`student,code,level,date,teacher`): a teacher's level, through an administrator.

A level is one of four (beginning, developing, meets, exceeds), written as its name, a common
synonym, 1–4, or a grade the school's `grade_levels` setting maps ("B+" → meets). A bad file is
refused whole, naming its line and column; nothing is imported.
"""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Iterator

from dateutil import parser as dateparser
from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from core.domain.models import utcnow
from core.domain.settings import Key, Pairs, SettingError
from core.domain.store import Tx
from core.engine.flow import plain

LEVELS = ("beginning", "developing", "meets", "exceeds")  # level n is LEVELS[n - 1]
# The words schools write for the four levels (standards-based report cards, in English and Spanish).
LEVEL_WORDS = {
    1: ("beginning", "begins", "emerging", "novice", "not yet", "below", "inicial", "en inicio", "inicio",
        "principiante", "insuficiente"),
    2: ("developing", "approaching", "progressing", "partially meets", "en desarrollo", "en proceso", "proceso",
        "basico", "básico", "suficiente"),
    3: ("meets", "meeting", "proficient", "secure", "achieved", "logrado", "cumple", "competente", "satisfactorio",
        "notable", "bien"),
    4: ("exceeds", "exceeding", "advanced", "extending", "mastery", "mastered", "distinguished", "destacado",
        "sobresaliente", "supera", "avanzado", "excelente"),
}
DEFAULT_GRADES = {"A": "exceeds", "B": "meets", "C": "developing", "D": "beginning", "F": "beginning",
                  "90-100": "exceeds", "80-89": "meets", "70-79": "developing", "0-69": "beginning"}
LETTER = re.compile(r"(?<![a-z])([a-f])\s*([+-]?)(?![a-z])")
NUMBER = re.compile(r"(\d+(?:[.,]\d+)?)\s*%?")
RANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*$")
GRADE_SPAN = re.compile(r"^(k|\d{1,2})\s*(?:-|–|to)\s*(k|\d{1,2})$")
CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
COMPETENCY_COLUMNS = ("code", "title", "subject", "description")
REQUIRED_COMPETENCY_COLUMNS = COMPETENCY_COLUMNS[:3]  # a description may be left out; the subject links a grade
MASTERY_COLUMNS = ("student", "code", "level")


def _folded(text: str) -> str:
    """Text for matching: no case, no accents, single spaces ("  Sobresaliente " == "sobresaliente")."""
    return " ".join(plain(text).split())


WORD_LEVEL = {_folded(word): level for level, words in LEVEL_WORDS.items() for word in words}


class GradeLevels(Pairs):
    """The school's grades mapped to the four levels: "A=exceeds, B+=meets, 90-100=exceeds"."""

    expects = 'pairs of a grade and a level, such as "A=exceeds, B=meets, C=developing, D=beginning"'

    def parse(self, text: str) -> dict[str, str]:
        pairs = super().parse(text)
        for grade, level in pairs.items():
            if level_number(level) is None:
                raise SettingError(f"{self.expects} (a level is one of {', '.join(LEVELS)}; {level!r} is not)")
            pairs[grade] = LEVELS[level_number(level) - 1]
        return pairs


GRADE_LEVELS = Key("grade_levels", GradeLevels(), DEFAULT_GRADES,
                   "how the school's grades map to mastery levels (beginning, developing, meets, exceeds)")


class Competency(SQLModel, table=True):
    """A competency or standard of a school's list (`companion competencies import`)."""

    __table_args__ = (UniqueConstraint("school_id", "code"),)
    id: int | None = Field(default=None, primary_key=True)
    school_id: int = Field(foreign_key="school.id")
    code: str
    title: str
    subject: str = ""
    description: str = ""
    grades: str | None = None  # the student grades it is for, comma-separated ("6,7,8"); None: every grade
    grade_levels: str | None = None  # JSON: its own grade → level mapping, over the school's
    updated_at: datetime = Field(default_factory=utcnow)


class Mastery(SQLModel, table=True):
    """A student's level on a competency, set by a teacher (through an administrator); the newest counts."""

    id: int | None = Field(default=None, primary_key=True)
    person_id: int = Field(foreign_key="person.id", index=True)
    competency_id: int = Field(foreign_key="competency.id", index=True)
    level: int  # 1–4: LEVELS[level - 1]
    source: str = "teacher"
    assessed_by: str | None = None  # the teacher's e-mail (or name), as the administrator gave it
    assessed_on: date
    created_at: datetime = Field(default_factory=utcnow)


class CompetencyError(ValueError):
    """A file or value that cannot be imported; the message names the line and column."""


def level_number(text: str) -> int | None:
    """The level (1–4) a level's name, synonym or number says; None otherwise."""
    word = _folded(str(text))
    if word in {"1", "2", "3", "4"}:
        return int(word)
    return WORD_LEVEL.get(word)


def grade_level(grade: str, mapping: dict[str, str]) -> int | None:
    """The level a grade says, as the student or a teacher wrote it ("B+", "I got an A-", "87%", "meets").

    The school's own keys first ("B+" exactly), then a level's name, then the letter with its sign
    and the bare letter, then a number in a mapped range. None when it says none of these.
    """
    folded = _folded(grade)
    keys = {_folded(key): value for key, value in mapping.items()}
    if folded in keys:
        return level_number(keys[folded])
    found = level_number(folded) or next((level for word, level in sorted(WORD_LEVEL.items(), key=lambda w: -len(w[0]))
                                          if len(word) > 3 and re.search(rf"\b{re.escape(word)}\b", folded)), None)
    if found:
        return found
    letters = LETTER.findall(folded)  # "I got a B+": the last letter, one with a sign first (not the article)
    if letters:
        letter = next((found for found in reversed(letters) if found[1]), letters[-1])
        for key in (letter[0] + letter[1], letter[0]):
            if key in keys:
                return level_number(keys[key])
    number = NUMBER.search(folded)
    if number:
        value = float(number.group(1).replace(",", "."))
        for key, level in keys.items():
            span = RANGE.match(key)
            if span and float(span.group(1)) <= value <= float(span.group(2)) + 0.999:
                return level_number(level)
    return None


# -- reading a CSV the way schools write them -------------------------------------------------------


@dataclass
class Row:
    line: int
    values: dict[str, str]
    columns: list[str]

    def column(self, name: str) -> str:
        """"column 2 (title)": where a value is, for an error message."""
        return f"column {self.columns.index(name) + 1} ({name})"

    def error(self, name: str, problem: str) -> CompetencyError:
        return CompetencyError(f"line {self.line}, {self.column(name)}: {problem}")


# Other names exports give the columns ("Standard Code", "Course", "Student Email", "Score").
COMPETENCY_ALIASES = {
    "competency_code": "code", "standard_code": "code", "standard_id": "code", "id": "code",
    "name": "title", "competency": "title", "standard": "title", "standard_title": "title",
    "course": "subject", "content_area": "subject", "subject_area": "subject", "discipline": "subject",
    "grades": "grade_levels", "grade_level": "grade_levels", "grade": "grade_levels",
}
MASTERY_ALIASES = {
    "student_id": "student", "sourcedid": "student", "student_sourcedid": "student", "student_email": "student",
    "email": "student", "competency": "code", "competency_code": "code", "standard": "code", "standard_code": "code",
    "score": "level", "mastery": "level", "mastery_level": "level", "rating": "level", "grade": "level",
    "assessed_on": "date", "date_assessed": "date", "assessment_date": "date", "teacher_email": "teacher",
    "assessed_by": "teacher",
}


def header_name(text: str, aliases: dict[str, str]) -> str:
    """A header as the column it names: lower case, underscores, and the usual other names."""
    name = re.sub(r"[\s\-]+", "_", text.strip().strip('"').casefold())
    return aliases.get(name, name)


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="strict")


def read_rows(data: bytes, required: tuple[str, ...], aliases: dict[str, str] | None = None) -> Iterator[Row]:
    """The file's records (blank lines skipped), after checking the header has every required column."""
    try:
        text = _decode(data)
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise CompetencyError(f"line {line}: the text is neither UTF-8 nor Windows-1252") from None
    if "\x00" in text:
        raise CompetencyError(f"line {text[:text.index(chr(0))].count(chr(10)) + 1}: binary data, not a CSV file")
    first = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    header = next(reader, None)
    if not header or not any(cell.strip() for cell in header):
        raise CompetencyError("line 1: the file is empty; a header row is expected")
    columns = [header_name(name, aliases or {}) for name in header]
    if len(set(filter(None, columns))) != len([c for c in columns if c]):
        repeated = next(c for c in columns if c and columns.count(c) > 1)
        first, second = [n + 1 for n, c in enumerate(columns) if c == repeated][:2]
        raise CompetencyError(f"line 1, columns {first} and {second}: both are {repeated}")
    for name in required:
        if name not in columns:
            raise CompetencyError(f"line 1, column {name}: the column is missing (the header has "
                                  f"{', '.join(c for c in columns if c) or 'nothing'})")
    start = 2
    while True:
        try:
            values = next(reader, None)
        except csv.Error as error:  # a quote that never closes, a stray quote inside a value
            raise CompetencyError(f"line {start}: {error} (check the quotes)") from None
        if values is None:
            return
        line, start = start, reader.line_num + 1
        if not any(value.strip() for value in values):
            continue
        if len(values) != len(columns):
            raise CompetencyError(f"line {line}: {len(values)} values for {len(columns)} columns")
        row = Row(line, {name: value.strip() for name, value in zip(columns, values)}, columns)
        for name, value in row.values.items():
            if CONTROL.search(value):
                raise row.error(name, "a control character (invisible in a name, and cut short by other systems)")
        yield row


# -- competencies ----------------------------------------------------------------------------------


@dataclass
class CompetencyReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: int = 0
    kept: list[str] = field(default_factory=list)  # stored, not in this file: kept

    def lines(self) -> list[str]:
        lines = [f"{len(self.added)} competencies added, {len(self.updated)} updated, {self.unchanged} unchanged"]
        if self.added:
            lines.append("added: " + ", ".join(self.added))
        if self.updated:
            lines.append("updated: " + ", ".join(self.updated))
        if self.kept:
            lines.append(f"kept, not in this file: {', '.join(self.kept)}")
        return lines


def read_grades(row: Row) -> tuple[str | None, str | None]:
    """The `grade_levels` value: the grades it is for ("6-8", "9, 10, 11") or a grade mapping ("A=exceeds")."""
    value = row.values.get("grade_levels", "")
    if not value:
        return None, None
    if "=" in value:
        try:
            mapping = GRADE_LEVELS.kind.parse(value.replace(";", ","))
        except SettingError as error:
            raise row.error("grade_levels", str(error)) from None
        return None, json.dumps(mapping)
    grades: list[str] = []
    for part in filter(None, (p.strip().casefold() for p in re.split(r"[,;/ ]+(?![-–]|to)", value))):
        part = re.sub(r"^(grade|gr\.?|g)\s*", "", part)
        span = GRADE_SPAN.match(part.replace(" ", ""))
        if span:
            low, high = (0 if end == "k" else int(end) for end in span.groups())
            if low > high:
                raise row.error("grade_levels", f"{part!r}: the first grade is after the last")
            grades += ["k" if n == 0 else str(n) for n in range(low, high + 1)]
        elif part == "k" or part.isdigit() and 0 < int(part) <= 13:
            grades.append(part if part == "k" else str(int(part)))
        else:
            raise row.error("grade_levels", f"{part!r} is neither grades (\"6-8\", \"9, 10\") nor a mapping "
                                            "(\"A=exceeds, B=meets\")")
    return ",".join(grades), None


def import_competencies(tx: Tx, school_id: int, data: bytes, now: datetime) -> CompetencyReport:
    """Add or update a school's competencies from a CSV; refuses the whole file on its first bad line."""
    parsed: dict[str, tuple] = {}
    for row in read_rows(data, REQUIRED_COMPETENCY_COLUMNS, COMPETENCY_ALIASES):
        code, title = row.values["code"], row.values["title"]
        if not code:
            raise row.error("code", "a competency needs a code")
        if not title:
            raise row.error("title", f"competency {code} needs a title")
        if code.casefold() in parsed:
            raise row.error("code", f"{code} is already on line {parsed[code.casefold()][0]}")
        parsed[code.casefold()] = (row.line, code, title, row.values.get("subject", ""),
                                   row.values.get("description", ""), *read_grades(row))
    report = CompetencyReport()
    stored = {row["code"].casefold(): row for row in tx.rows(
        "SELECT id, code, title, subject, description, grades, grade_levels FROM competency WHERE school_id = ?",
        (school_id,))}
    for key, (_line, code, title, subject, description, grades, mapping) in parsed.items():
        values = (code, title, subject, description, grades, mapping)
        old = stored.get(key)
        if old is None:
            tx.execute("INSERT INTO competency (school_id, code, title, subject, description, grades, grade_levels, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (school_id, *values, tx.ts(now)))
            report.added.append(code)
        elif tuple(old[name] or "" for name in ("code", "title", "subject", "description", "grades",
                                                 "grade_levels")) != tuple(v or "" for v in values):
            tx.execute("UPDATE competency SET code = ?, title = ?, subject = ?, description = ?, grades = ?, "
                       "grade_levels = ?, updated_at = ? WHERE id = ?", (*values, tx.ts(now), old["id"]))
            report.updated.append(code)
        else:
            report.unchanged += 1
    report.kept = sorted(row["code"] for key, row in stored.items() if key not in parsed)
    return report


def competencies(tx: Tx, school_id: int | None) -> list[dict]:
    """A school's competencies, by subject and code."""
    return list(tx.rows("SELECT id, code, title, subject, description, grades, grade_levels FROM competency "
                        "WHERE school_id = ? ORDER BY subject, code", (school_id,)))


def mapping_for(competency: dict, school_grades: dict[str, str]) -> dict[str, str]:
    """The grade mapping that applies to a competency: its own, else the school's."""
    return json.loads(competency["grade_levels"]) if competency.get("grade_levels") else school_grades


# -- mastery ---------------------------------------------------------------------------------------


@dataclass
class MasteryReport:
    saved: int = 0
    unchanged: int = 0
    students: set[int] = field(default_factory=set)

    def lines(self) -> list[str]:
        return [f"{self.saved} mastery levels saved for {len(self.students)} students, {self.unchanged} already there"]


def find_competency(tx: Tx, school_id: int | None, code: str) -> dict | None:
    return next((row for row in competencies(tx, school_id) if row["code"].casefold() == code.strip().casefold()),
                None)


def find_student(tx: Tx, who: str) -> tuple[int, int | None] | None:
    """The student a file names by roster id, e-mail or id: (id, school id)."""
    row = tx.one("SELECT id, school_id FROM person WHERE role = 'student' AND (sourced_id = ? OR lower(email) = "
                 "lower(?) OR CAST(id AS TEXT) = ?) ORDER BY id", (who, who, who.removeprefix("#")))
    return (row[0], row[1]) if row else None


def record_mastery(tx: Tx, person_id: int, competency_id: int, level: int, on: date, by: str | None,
                   now: datetime) -> bool:
    """Store a teacher's level; False when the same one is already there (an import read twice)."""
    if tx.one("SELECT 1 FROM mastery WHERE person_id = ? AND competency_id = ? AND level = ? AND assessed_on = ? "
              "AND source = 'teacher' AND COALESCE(assessed_by, '') = ?",
              (person_id, competency_id, level, tx.day(on), by or "")):
        return False
    tx.execute("INSERT INTO mastery (person_id, competency_id, level, source, assessed_by, assessed_on, created_at) "
               "VALUES (?, ?, ?, 'teacher', ?, ?, ?)", (person_id, competency_id, level, by, tx.day(on), tx.ts(now)))
    return True


def parse_day(text: str) -> date:
    """A date as exports write it: 2026-11-20, 11/20/2026, 20 Nov 2026 (month first when it is unclear)."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        return dateparser.parse(text, dayfirst=False).date()


def import_mastery(tx: Tx, data: bytes, school_grades: dict[int | None, dict[str, str]], today: date,
                   now: datetime) -> MasteryReport:
    """Teachers' levels from `student,code,level[,date][,teacher]`; refuses the whole file on its first bad line.

    `school_grades` gives each school's grade mapping (its `grade_levels` setting).
    """
    report = MasteryReport()
    for row in read_rows(data, MASTERY_COLUMNS, MASTERY_ALIASES):
        values = row.values
        student = find_student(tx, values["student"]) if values["student"] else None
        if student is None:
            raise row.error("student", f"no student {values['student']!r} (a roster id, e-mail or id)")
        person_id, school_id = student
        competency = find_competency(tx, school_id, values["code"])
        if competency is None:
            raise row.error("code", f"no competency {values['code']!r} in the student's school "
                                    "(import the list first: companion competencies import)")
        level = grade_level(values["level"], mapping_for(competency, school_grades.get(school_id, DEFAULT_GRADES)))
        if level is None:
            raise row.error("level", f"{values['level']!r} is not a level ({', '.join(LEVELS)}, 1–4) "
                                     "or a grade the school maps (grade_levels)")
        on = today
        if values.get("date"):
            try:
                on = parse_day(values["date"])
            except (ValueError, OverflowError):
                raise row.error("date", f"{values['date']!r} is not a date (2026-11-20)") from None
        if record_mastery(tx, person_id, competency["id"], level, on, values.get("teacher") or None, now):
            report.saved += 1
            report.students.add(person_id)
        else:
            report.unchanged += 1
    return report


def teacher_levels(tx: Tx, person_id: int) -> dict[int, dict]:
    """The newest teacher level of each competency of a student: {competency id: {level, by, on}}."""
    found: dict[int, dict] = {}
    for row in tx.rows("SELECT competency_id, level, assessed_by, assessed_on FROM mastery WHERE person_id = ? "
                       "AND source = 'teacher' ORDER BY assessed_on, id", (person_id,)):
        found[row["competency_id"]] = {"level": LEVELS[row["level"] - 1], "by": row["assessed_by"],
                                       "on": tx.as_date(row["assessed_on"])}
    return found
