"""The personal learning plan (SPEC §3) and the portfolio a student brings to a student-led conference.

    /plan        the term's plan: longer-term aim, focus areas, the term goal from the report-card
                 reflection, progress across the four categories, competencies with their mastery
                 level (a teacher's, through an administrator; the student's own, from the
                 reflection through the school's `grade_levels`), and the newest evidence
    /focus       focus: areas ─► end (this term's focus areas, in the student's words)
    /portfolio   the portfolio as a page (HTML) in this chat; `/portfolio conference` the one for the
                 conference: only what the student shares with family
    /share       share: part ─► part … ─done─► end (what the family sees at the conference)

A goal, a reflection or a piece of evidence belongs to a competency when its words name the
competency's code or subject ("my math test" → the math competencies), and a piece of evidence to
the competencies of the goal it was shared for: nothing extra to tag, nothing to keep in step.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from sqlmodel import Field, SQLModel

from core.domain import records
from core.domain.files import FileMissing, FolderFiles
from core.domain.messages import Button, FilePart, Outbound
from core.domain.access import Viewer
from core.domain.models import DEFAULT_LOCALE, DEFAULT_TIMEZONE, CalendarKind, GoalStatus, utcnow
from core.domain.store import Tx, as_moment
from core.engine.flow import END, Answers, Choice, Flow, Step, Text, Turn, plain
from core.engine.registry import Command, Feature
from core.features.reflection import reflections_for, self_assessments, term_goal
from core.render import charts
from core.render.portfolio import render_portfolio
from core.school import competencies as comp
from core.school.privacy import keep_export

if TYPE_CHECKING:
    from core.engine.pipeline import Engine
    from core.engine.registry import Registry

SECTIONS = ("profile", "plan", "goals", "evidence")  # what a student may share with family
AUDIENCES = ("mine", "conference")
CONFERENCE_WORDS = ("conference", "conferencia", "family", "familia")
TERM_FALLBACK = timedelta(weeks=18)  # "this term" where the calendar names none: about a semester
NEWEST_EVIDENCE = 3
PLAN_COMPETENCIES = 8  # /plan lists this many; the portfolio lists every one with a level or evidence
MAX_FOCUSES, MAX_FOCUS_LENGTH = 5, 200
BULLETS = ".;:-•*·"  # around an area in a list a student typed
FOCUS = "focus"  # planfocus.category of a focus area (the table also fits competencies, kept separately)


class PortfolioShare(SQLModel, table=True):
    """A part of the portfolio the student shares with family (the conference portfolio shows only these)."""

    person_id: int = Field(foreign_key="person.id", primary_key=True)
    section: str = Field(primary_key=True)  # profile, plan, goals, evidence
    shared_at: datetime = Field(default_factory=utcnow)


# -- reading the plan --------------------------------------------------------------------------------


def mentions(text: str | None, competency: dict) -> bool:
    """Do these words name the competency (its code, or its subject as a word)?"""
    words = plain(text or "")
    names = [competency["code"], competency["subject"]]
    return any(name and re.search(rf"(?<!\w){re.escape(plain(name))}(?!\w)", words) for name in names)


def same_subject(answer: str | None, subject: str | None) -> bool:
    """Is a reflection's subject the competency's? "Math" is "Math 7" and "Mathematics"; "English" is
    "English Language Arts" (one begins a word of the other, case and accents aside)."""
    first, second = plain(answer or ""), plain(subject or "")
    if not first or not second:
        return False
    return any(re.search(rf"(?<!\w){re.escape(a)}", b) for a, b in ((first, second), (second, first)))


def term_of(tx: Tx, school_id: int | None, today: date) -> dict:
    """The term today falls in (the roster's before a calendar's); else the last 18 weeks."""
    row = tx.one("SELECT title, starts_on, ends_on FROM calendarevent WHERE school_id = ? AND kind = ? "
                 "AND starts_on <= ? AND ends_on >= ? ORDER BY CASE WHEN source = 'roster' THEN 0 ELSE 1 END, "
                 "starts_on DESC", (school_id, CalendarKind.term, tx.day(today), tx.day(today)))
    if row is None:
        return {"title": None, "start": today - TERM_FALLBACK, "end": today}
    return {"title": row[0], "start": tx.as_date(row[1]), "end": tx.as_date(row[2])}


def student(tx: Tx, person_id: int) -> dict:
    """The student's name, grade and school, and the language and time zone they read in."""
    found = next(tx.rows("SELECT p.id, p.given_name, p.family_name, p.grade, p.school_id, s.name AS school, "
                         "COALESCE(p.locale, s.locale) AS locale, COALESCE(p.timezone, s.timezone) AS timezone "
                         "FROM person p LEFT JOIN school s ON s.id = p.school_id WHERE p.id = ?", (person_id,)), None)
    if found is None:
        raise LookupError(f"no person {person_id}")
    return found


def for_grade(competency: dict, grade: str | None) -> bool:
    """Is the competency for the student's grade (every grade when either is unknown)?"""
    if not competency["grades"] or not grade:
        return True
    wanted = "k" if plain(grade) in ("k", "kg", "kindergarten") else plain(grade).lstrip("0")
    return wanted in competency["grades"].split(",")


def term_goals(tx: Tx, person_id: int, start: date) -> list[dict]:
    """The term's goals (dropped ones aside), each with its reviews."""
    found = records.goals(tx, person_id, "week_start >= ? AND status != ?", (tx.day(start), GoalStatus.dropped))
    reviews: dict[int, list[dict]] = {}
    for row in tx.rows("SELECT goal_id, status, notes, created_at FROM goalreview WHERE person_id = ? ORDER BY id",
                       (person_id,)):
        reviews.setdefault(row["goal_id"], []).append(row)
    for goal in found:
        goal["week_start"] = tx.as_date(goal["week_start"])
        goal["reviews"] = reviews.get(goal["id"], [])
    return found


def evidence(tx: Tx, person_id: int, start: date) -> list[dict]:
    """The student's artifacts from `start` on, newest first, with the goal each was shared for."""
    rows = list(tx.rows("SELECT a.id, a.kind, a.ref, a.caption, a.file_key, a.goal_id, a.created_at, g.text AS goal "
                        "FROM artifact a LEFT JOIN goal g ON g.id = a.goal_id WHERE a.person_id = ? "
                        "AND a.created_at >= ? ORDER BY a.id DESC", (person_id, tx.ts(since(start)))))
    for row in rows:
        row["created_at"] = as_moment(row["created_at"])
    return rows


def since(day: date) -> datetime:
    """The first moment of a day (UTC), to compare with stored moments."""
    return datetime.combine(day, time(), tzinfo=timezone.utc)


def competency_levels(tx: Tx, person: dict, grades: dict[str, str], goals: list[dict], artifacts: list[dict],
                      reflections: list[dict], assessed: list[dict]) -> list[dict]:
    """The school's competencies for the student, each with the teacher's level, their own (from the
    report-card reflection's grades in `assessed`), and the goals, evidence and reflections that name it."""
    teacher = comp.teacher_levels(tx, person["id"])
    found = []
    for competency in comp.competencies(tx, person["school_id"]):
        if not for_grade(competency, person["grade"]) and competency["id"] not in teacher:
            continue
        own = next((answer for answer in reversed(assessed)
                    if same_subject(answer.get("subject"), competency["subject"])), None)
        own_level = comp.grade_level(own["grade"], comp.mapping_for(competency, grades)) if own and own.get("grade") \
            else None
        linked_goals = [goal for goal in goals if mentions(goal["text"], competency)]
        goal_ids = {goal["id"] for goal in linked_goals}
        found.append({
            "code": competency["code"], "title": competency["title"], "subject": competency["subject"],
            "description": competency["description"],
            "teacher": teacher.get(competency["id"]),
            "self": {"level": comp.LEVELS[own_level - 1], "grade": own["grade"]} if own_level else None,
            "goals": len(linked_goals),
            "evidence": len([a for a in artifacts if a["goal_id"] in goal_ids or mentions(a["caption"], competency)]),
            "reflections": len([r for r in reflections if mentions(r["text"], competency)]),
        })
    return found


def weekly_reflections(tx: Tx, person_id: int, start: date) -> list[dict]:
    rows = list(tx.rows("SELECT week_start, text FROM reflection WHERE person_id = ? AND kind = 'week' "
                        "AND week_start >= ? ORDER BY week_start", (person_id, tx.day(start))))
    for row in rows:
        row["week_start"] = tx.as_date(row["week_start"])
    return rows


def focus_areas(tx: Tx, person_id: int, start: date) -> list[str]:
    return [row[0] for row in tx.all("SELECT title FROM planfocus WHERE person_id = ? AND category = ? "
                                     "AND created_at >= ? ORDER BY id", (person_id, FOCUS, tx.ts(since(start))))]


@dataclass
class Plan:
    """Everything the plan and the portfolio show about one student and term."""

    person: dict
    profile: dict
    term: dict
    focus: list[str]
    term_goal: str | None
    progress: dict
    goals: list[dict]
    reflections: list[dict]
    competencies: list[dict]
    evidence: list[dict]
    report_card: dict | None  # the newest report-card reflection, as the viewer may see it


def read_plan(tx: Tx, person_id: int, today: date, grades: dict[str, str], viewer: str = Viewer.student) -> Plan:
    """The student's plan for the term today falls in, as `viewer` (the student, or their family) may see it."""
    person = student(tx, person_id)
    assessed = self_assessments(tx, person_id, viewer)
    term = term_of(tx, person["school_id"], today)
    goals = term_goals(tx, person_id, term["start"])
    artifacts = evidence(tx, person_id, term["start"])
    reflections = weekly_reflections(tx, person_id, term["start"])
    return Plan(person=person, profile=records.profile(tx, person_id), term=term,
                focus=focus_areas(tx, person_id, term["start"]), term_goal=term_goal(tx, person_id, viewer),
                progress=records.progress_by_category(tx, person_id), goals=goals, reflections=reflections,
                competencies=competency_levels(tx, person, grades, goals, artifacts, reflections, assessed),
                evidence=artifacts, report_card=reflections_for(tx, [person_id], viewer).get(person_id))


def school_grades(tx: Tx, registry: "Registry", person_id: int) -> dict[str, str]:
    """How the student's school maps grades to levels (its `grade_levels` setting)."""
    school = tx.one("SELECT school_id FROM person WHERE id = ?", (person_id,))
    return registry.settings.for_school(tx, school[0] if school else None)[comp.GRADE_LEVELS.name]


def show_plan(engine: "Engine", turn: Turn, _args: str) -> None:
    """The plan: progress across the four categories, the term goal, competencies and the newest evidence."""
    plan = read_plan(turn.tx, turn.person_id, turn.today, school_grades(turn.tx, engine.registry, turn.person_id))
    shown = [c for c in plan.competencies if c["teacher"] or c["self"] or c["evidence"] or c["goals"]]
    turn.say("plan/show", buttons=(Button("plan.focus", "/focus"), Button("plan.portfolio", "/portfolio")),
             profile=plan.profile, term=plan.term, focus=plan.focus, term_goal=plan.term_goal,
             progress=plan.progress, goals=records.of_week(turn.tx, turn.person_id, turn.week_start),
             competencies=shown[:PLAN_COMPETENCIES], more=len(shown) - len(shown[:PLAN_COMPETENCIES]),
             unassessed=len(plan.competencies) - len(shown),
             evidence=[{"kind": a["kind"], "caption": a["caption"], "goal": a["goal"],
                        "link": a["ref"] if a["kind"] == "link" else None} for a in plan.evidence[:NEWEST_EVIDENCE]])


# -- focus areas --------------------------------------------------------------------------------------


@dataclass
class FocusAnswers(Answers):
    areas: str | None = None


def save_focus(turn: Turn, text: str) -> None:
    """This term's focus areas replace the ones set before in the term (one per line or comma)."""
    start = term_of(turn.tx, student(turn.tx, turn.person_id)["school_id"], turn.today)["start"]
    turn.tx.execute("DELETE FROM planfocus WHERE person_id = ? AND category = ? AND created_at >= ?",
                    (turn.person_id, FOCUS, turn.tx.ts(since(start))))
    areas = focus_list(text)
    for area in areas:
        turn.tx.execute("INSERT INTO planfocus (person_id, category, title, set_by, created_at) "
                        "VALUES (?, ?, ?, 'student', ?)", (turn.person_id, FOCUS, area, turn.tx.ts(turn.now)))
    turn.say("plan/focus_saved", focus=areas)


def _bare(area: str) -> str:
    return area.strip().strip(BULLETS).strip()


def focus_list(text: str) -> list[str]:
    """The areas in what the student wrote: one per line, comma or semicolon ("and" joins the last two of a
    list, not the words of one area: "rock and roll"), at most five, each as written (bullets aside)."""
    parts = [part for part in re.split(r"[\n\r,;]+", text) if _bare(part)]
    if len(parts) > 1:
        parts[-1:] = re.split(r"\s+(?:and|y|e)\s+", parts[-1].strip(), maxsplit=1)
    areas = [_bare(area) for area in parts]
    return [area[:MAX_FOCUS_LENGTH] for area in areas if area][:MAX_FOCUSES]


FOCUS_FLOW = Flow("focus", answers=FocusAnswers, steps=(
    Step("areas", ask="plan/ask_focus", expect=Text(max_length=500), save="areas", effect=save_focus),
))


# -- sharing with family ------------------------------------------------------------------------------


def shared_sections(tx: Tx, person_id: int) -> set[str]:
    return {row[0] for row in tx.all("SELECT section FROM portfolioshare WHERE person_id = ?", (person_id,))}


@dataclass
class ShareAnswers(Answers):
    part: str | None = None


def toggle_share(turn: Turn, part: str) -> None:
    """Tapping a part shares it with family, or stops sharing it."""
    if part == "done":
        return
    if part in shared_sections(turn.tx, turn.person_id):
        turn.tx.execute("DELETE FROM portfolioshare WHERE person_id = ? AND section = ?", (turn.person_id, part))
    else:
        turn.tx.execute("INSERT INTO portfolioshare (person_id, section, shared_at) VALUES (?, ?, ?)",
                        (turn.person_id, part, turn.tx.ts(turn.now)))


SHARE_FLOW = Flow("share", answers=ShareAnswers, steps=(
    Step("part", ask="plan/ask_share",
         context=lambda turn: {"shared": [s for s in SECTIONS if s in shared_sections(turn.tx, turn.person_id)]},
         expect=Choice((*SECTIONS, "done"), labels={s: f"share.{s}" for s in SECTIONS}),
         save="part", effect=toggle_share, then=lambda turn: END if turn.answers.part == "done" else "part",
         branches=("part", END)),
), finish=lambda turn: turn.say("plan/share_saved", buttons=(Button("plan.conference", "/portfolio conference"),),
                                shared=[s for s in SECTIONS if s in shared_sections(turn.tx, turn.person_id)]))


# -- the portfolio ------------------------------------------------------------------------------------


def file_bytes(tx: Tx, location: str, key: str) -> bytes | None:
    """A stored file's bytes, read inside the caller's transaction (the database kind) or from the folder."""
    if location:
        try:
            return FolderFiles(location).read(key)
        except FileMissing:
            return None
    row = tx.one("SELECT data FROM storedfile WHERE key = ?", (key,))
    return bytes(row[0]) if row else None


def file_info(tx: Tx, location: str, key: str) -> tuple[str, str] | None:
    """A stored file's (name, type)."""
    if location:
        try:
            ref = FolderFiles(location).ref(key)
        except FileMissing:
            return None
        return ref.name, ref.mime
    row = tx.one("SELECT name, mime FROM storedfile WHERE key = ?", (key,))
    return (row[0], row[1]) if row else None


def data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def weekly_counts(goals: list[dict], start: date, end: date) -> list[tuple[date, int, int]]:
    """Goals set and done per week of the term, (Monday, set, done), up to the last week with a goal or `end`."""
    first = start - timedelta(days=start.weekday())
    last = max([end - timedelta(days=end.weekday()), *(goal["week_start"] for goal in goals)])
    weeks = [first + timedelta(weeks=n) for n in range((last - first).days // 7 + 1)]
    return [(week, sum(g["week_start"] == week for g in goals),
             sum(g["week_start"] == week and g["status"] == GoalStatus.done for g in goals)) for week in weeks]


@dataclass
class Portfolio:
    """A rendered portfolio: the Markdown, the HTML, and the files the Markdown shows from its folder."""

    name: str  # a file name without extension: portfolio-<given name>-<day>[-conference]
    markdown: str
    html: str
    files: dict[str, bytes]  # name in `folder` → bytes (the chart, the photos and files)

    @property
    def folder(self) -> str:
        return files_folder(self.name)


def files_folder(name: str) -> str:
    """The folder beside a portfolio's Markdown file that holds its files (the Markdown links into it)."""
    return f"{name}-files"


def build_portfolio(tx: Tx, registry: "Registry", person_id: int, now: datetime, audience: str,
                    location: str) -> Portfolio:
    """The student's portfolio for `audience`: "mine" (everything) or "conference" (what they share with
    family), in their language, as of today in their time zone; `location` is the file store's."""
    if audience not in AUDIENCES:
        raise ValueError(f"audience must be one of {AUDIENCES}")
    person = student(tx, person_id)
    locale = person["locale"] or DEFAULT_LOCALE
    today = now.astimezone(ZoneInfo(person["timezone"] or DEFAULT_TIMEZONE)).date()
    plan = read_plan(tx, person_id, today, school_grades(tx, registry, person_id),
                     Viewer.student if audience == "mine" else Viewer.family)
    given = re.sub(r"[^a-z0-9]+", "-", plain(person["given_name"])).strip("-") or "student"
    name = f"portfolio-{given}-{today}" + ("-conference" if audience == "conference" else "")
    shown = set(SECTIONS) if audience == "mine" else shared_sections(tx, person_id)
    files: dict[str, bytes] = {}
    if "goals" in shown:
        weeks = weekly_counts(plan.goals, plan.term["start"], min(today, plan.term["end"]))
        files["chart.png"] = charts.weekly_bars(
            [week for week, _, _ in weeks],
            {registry.catalog.label("plan.chart_set", locale): [n for _, n, _ in weeks],
             registry.catalog.label("plan.chart_done", locale): [n for _, _, n in weeks]},
            labels=lambda week: f"{week.day}/{week.month}")
    artifacts = []
    for artifact in plan.evidence if "evidence" in shown else []:
        item = {"kind": artifact["kind"], "caption": artifact["caption"], "goal": artifact["goal"],
                "on": artifact["created_at"].date(), "link": None, "image": None, "file": None, "name": None}
        if artifact["kind"] == "link":
            item["link"] = artifact["ref"] if re.match(r"^https?://", artifact["ref"], re.IGNORECASE) else None
            item["name"] = artifact["ref"]
        elif artifact["file_key"]:
            info = file_info(tx, location, artifact["file_key"])
            data = file_bytes(tx, location, artifact["file_key"]) if info else None
            if info and data is not None:
                file_name = f"{artifact['id']}-{re.sub(r'[^A-Za-z0-9._-]+', '_', info[0])[-60:]}"
                files[file_name] = data
                item["name"], item["file"] = info[0], f"{files_folder(name)}/{file_name}"
                if info[1].startswith("image/") or artifact["kind"] == "photo":
                    item["image"] = data_uri(data, info[1] if info[1].startswith("image/") else "image/jpeg")
        artifacts.append(item)
    context = {
        "student": {"name": f"{person['given_name']} {person['family_name']}".strip(), "grade": person["grade"],
                    "school": person["school"]},
        "audience": audience, "today": today, "shown": sorted(shown),
        "profile": plan.profile if "profile" in shown else None,
        "plan": {"term": plan.term, "focus": plan.focus, "term_goal": plan.term_goal, "progress": plan.progress,
                 "competencies": [c for c in plan.competencies if c["teacher"] or c["self"] or c["goals"]
                                  or c["evidence"] or c["reflections"]]} if "plan" in shown else None,
        "goals": plan.goals if "goals" in shown else None,
        "reflections": plan.reflections if "goals" in shown else None,
        "report_card": plan.report_card,
        "evidence": artifacts if "evidence" in shown else None,
    }
    chart = files.get("chart.png")
    html = render_portfolio({**context, "chart": data_uri(chart, "image/png") if chart else None}, locale, "html")
    markdown = render_portfolio({**context, "chart": f"{files_folder(name)}/chart.png" if chart else None}, locale,
                                "md")
    return Portfolio(name=name, markdown=markdown, html=html, files=files)


def with_portfolio(tx: Tx, registry: "Registry", person_id: int, now: datetime, data: dict, location: str) -> dict:
    """A data export (`/mydata`, `companion export`) with the student's own portfolio page inside it: the
    self-contained HTML, photos embedded, so the one file holds everything."""
    page = build_portfolio(tx, registry, person_id, now, "mine", location)
    return {**data, "portfolio": {"name": f"{page.name}.html", "html": page.html}}


def send_portfolio(engine: "Engine", turn: Turn, args: str) -> None:
    """The portfolio as one HTML page in this chat: the student's own, or the conference one."""
    audience = "conference" if plain(args) in CONFERENCE_WORDS else "mine"
    portfolio = build_portfolio(turn.tx, engine.registry, turn.person_id, turn.now, audience,
                                engine.settings.file_store)
    data = portfolio.html.encode()
    ref = keep_export(turn.tx, engine.settings.file_store, turn.person_id, data, portfolio.name + ".html", turn.now,
                      mime="text/html")
    turn.tx.audit(turn.platform, "portfolio_sent", turn.person_id, {"audience": audience}, turn.now)
    buttons = (Button("plan.share", "/share"),) if audience == "conference" else (
        Button("plan.conference", "/portfolio conference"),)
    turn.replies.append(Outbound("plan/portfolio_sent", {"audience": audience,
                                                         "shared": sorted(shared_sections(turn.tx, turn.person_id))},
                                 buttons=buttons, document=FilePart(ref)))


FEATURE = Feature(
    "plan",
    flows=(FOCUS_FLOW, SHARE_FLOW),
    commands=(Command("plan", run=show_plan, menu=3, home=True),
              Command("portfolio", run=send_portfolio), Command("focus", flow="focus"),
              Command("share", flow="share")),
    settings=(comp.GRADE_LEVELS,),
    person_tables=("mastery", "portfolioshare"),
)
