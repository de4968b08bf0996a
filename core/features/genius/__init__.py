"""Genius hour: a passion project through the six Ps — passion, pitch, plan, project, product,
presentation — over one project record (`records.py`).

    /project ─► passion ─► question ─(a quick search would answer it?)─► rethink ─┐
                               ▲─────────────────────────────────── rephrase ◄────┘
                           why ─► audience ─► the adviser approves (WaitFor) ─► verdict ─► plan
    plan:      milestone ─► due (after the term? on a holiday?) ─► another? … three to six
    weekly:    progress ─► next step ─► blocker ─► help? ─► evidence ─► milestone done?
    product:   what was made ─► evidence ─► presentation date ─► audience
    after it:  what I learned ─► what I'd do differently ─► what I'm proud of

`/project` (Spanish `/proyecto`) shows the stage and the next step, and opens what comes next. An
adviser gets each pitch with Approve / Ask for changes (`/pitchok`, `/pitchfix`): the first to act
decides and the others are told who did. On the school's genius-hour day (`genius_hour_day`, off by
default) the project check-in is nudged like every other nudge, last in the weekly cap's order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, time, timezone
from typing import TYPE_CHECKING, Any

from core.domain import access, records as profile_records
from core.domain.messages import Button, Inbound, Outbound
from core.domain.models import CalendarKind, Role
from core.domain.settings import Kind, Key, SettingError, SettingsCatalog, Weekday
from core.engine.flow import (END, Answers, Choice, Day, Expect, Flow, Invalid, Step, SubFlow, Text, Turn, WaitFor,
                              plain)
from core.engine.registry import ADULTS, ADVISERS, Command, Concern, DigestSection, Feature, Highlight, Reason, Trigger
from core.features.genius import records
from core.features.genius.pitch import cues_of, quick_search
from core.features.genius.records import Approval, Stage
from core.schedule.policy import SchoolCalendar, load_calendars

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

MIN_MILESTONES, MAX_MILESTONES = 3, 6
MAX_PASSIONS = 6  # interests offered as buttons
SPLIT_INTERESTS = re.compile(r"\s*(?:[,;/&+\n]|\band\b|\by\b|\be\b)\s*", re.IGNORECASE)
URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)


# -- a school setting that is on or off -------------------------------------------------------------


@dataclass(frozen=True)
class Switch(Kind):
    """Yes or no ("on"/"off", "true"/"false")."""

    expects = "on or off"

    def parse(self, text: str) -> bool:
        word = text.strip().lower()
        if word in ("on", "yes", "true", "1", "required"):
            return True
        if word in ("off", "no", "false", "0", "optional"):
            return False
        raise SettingError(self.expects)

    def show(self, value: bool) -> str:
        return "on" if value else "off"


SETTINGS = (
    Key("genius_hour_day", Weekday(), None, "the day of the weekly genius-hour project check-in (or off)"),
    Key("pitch_approval_required", Switch(), True, "a genius-hour pitch needs an adviser's approval before planning"),
)


def setting(turn: Turn, name: str) -> Any:
    """One of this feature's settings for the student's school."""
    school = turn.tx.one("SELECT school_id FROM person WHERE id = ?", (turn.person_id,))
    return SettingsCatalog(SETTINGS).for_school(turn.tx, school[0] if school else None)[name]


def calendar_of(turn: Turn) -> SchoolCalendar:
    school = turn.tx.one("SELECT school_id FROM person WHERE id = ?", (turn.person_id,))
    school_id = school[0] if school else None
    return load_calendars(turn.tx, school_id).get(school_id, SchoolCalendar()) if school_id else SchoolCalendar()


# -- answers that come from the student's own lists ---------------------------------------------------


def split_interests(text: str) -> list[str]:
    """Interests one item each: "drawing, music and soccer" → drawing · music · soccer (six at most, no repeats)."""
    items = [item.strip(" .") for item in SPLIT_INTERESTS.split(text or "") if item and item.strip(" .")]
    return list(dict.fromkeys(items))[:MAX_PASSIONS]


def interests(turn: Turn) -> list[str]:
    """The profile's interests, split into items."""
    return split_interests(profile_records.profile(turn.tx, turn.person_id).get("interests") or "")


@dataclass(frozen=True)
class Passion(Expect):
    """One of the profile's interests (a button each: payload "p0", "p1"… fits any chat's limit), or typed."""

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return tuple(Button("genius.item", f"p{n}", {"text": item}) for n, item in enumerate(interests(turn)))

    def parse(self, turn: Turn, inbound: Inbound) -> str:
        items = interests(turn)
        if inbound.payload and re.fullmatch(r"p\d", inbound.payload) and int(inbound.payload[1:]) < len(items):
            return items[int(inbound.payload[1:])]
        return Text(max_length=200).parse(turn, inbound)


@dataclass(frozen=True)
class OpenMilestone(Expect):
    """A milestone still open (a button each, payload "m<id>"), or "none"."""

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return (*(Button("genius.item", f"m{m['id']}", {"text": m["text"]}) for m in turn.answers.open_milestones),
                Button("genius.none", "none"))

    def parse(self, turn: Turn, inbound: Inbound) -> int | None:
        if inbound.payload == "none":
            return None
        known = {f"m{m['id']}": m["id"] for m in turn.answers.open_milestones}
        if inbound.payload in known:
            return known[inbound.payload]
        named = {plain(m["text"]): m["id"] for m in turn.answers.open_milestones}  # its label typed
        if plain(inbound.text or "") in named:
            return named[plain(inbound.text or "")]
        Choice(("none",), labels={"none": "genius.none"}).parse(turn, inbound)  # "none" typed; else refused
        return None


# -- passion and pitch --------------------------------------------------------------------------------


@dataclass
class PitchAnswers(Answers):
    passion: str | None = None
    question: str | None = None
    rethink: str | None = None
    why: str | None = None
    audience: str | None = None
    verdict: dict | None = None  # the adviser's decision: approved, comment, by
    go: str | None = None


def begin_pitch(turn: Turn) -> str:
    """A new project starts at the passion; a pitch sent back for changes is revised from its question."""
    project = records.active_project(turn.tx, turn.person_id)
    if project is None:
        return "passion"
    if project["stage"] == Stage.pitch and project["approval"] in (None, Approval.changes):
        turn.answers.passion = project["passion"]
        return "question"
    turn.say("genius/status", **status_context(turn, project))
    return END


def is_quick_search(turn: Turn) -> bool:
    table = turn.catalog.lexicon(turn.locale).tables.get("pitch", {})
    return quick_search(cues_of(table), turn.answers.question or "")


def pitch_context(turn: Turn) -> dict:
    project = records.active_project(turn.tx, turn.person_id)
    return {"passion": turn.answers.passion, "question": turn.answers.question,
            "before": project["question"] if project else None,
            "comment": project["approval_comment"] if project else None,
            "why_before": project["why"] if project else None,
            "audience_before": project["audience"] if project else None}


def save_pitch(turn: Turn, _audience: str) -> None:
    """The pitch is kept on the project record; with approval required, each adviser gets it to decide."""
    tx, answers = turn.tx, turn.answers
    required = setting(turn, "pitch_approval_required")
    approval = Approval.pending if required else Approval.not_required
    project = records.active_project(tx, turn.person_id)
    if project is None:
        term = calendar_of(turn).first(CalendarKind.term, turn.today)
        project_id = tx.insert(
            "INSERT INTO geniusproject (person_id, status, stage, term_ends_on, passion, created_at, updated_at) "
            "VALUES (?, 'active', ?, ?, ?, ?, ?)", (turn.person_id, Stage.pitch.value, tx.day(term.ends_on if term else None),
                                                   answers.passion, tx.ts(turn.now), tx.ts(turn.now)))
    else:
        project_id = project["id"]
    records.update(tx, project_id, turn.now, passion=answers.passion, question=answers.question, why=answers.why,
                   audience=answers.audience, approval=approval, approval_comment=None,
                   stage=Stage.pitch if required else Stage.plan)
    tx.audit("genius", "pitch_sent" if required else "pitch_saved", turn.person_id, {"project": project_id}, turn.now)
    if required:
        for adviser_id, platform, chat_id, locale, _ in advisers_of(turn, turn.person_id):
            turn.others.append((adviser_id, platform, chat_id, locale or turn.locale, Outbound(
                "genius/pitch_for_adviser",
                {"student": turn.sender.given_name, "passion": answers.passion, "question": answers.question,
                 "why": answers.why, "audience": answers.audience, "revised": project is not None},
                (Button("genius.approve", f"/pitchok {turn.person_id}"),
                 Button("genius.changes", f"/pitchfix {turn.person_id}")))))


def advisers_of(turn: Turn, student_id: int) -> list[tuple]:
    """The student's advisers' reachable chat accounts (access.py decides who they are)."""
    return [row for row in access.alert_recipients(turn.tx, student_id) if row[4] == Role.adviser]


def after_pitch(turn: Turn) -> str:
    project = records.active_project(turn.tx, turn.person_id)
    return "approval" if project["approval"] == Approval.pending else "planning"


def verdict_context(turn: Turn) -> dict:
    return dict(turn.answers.verdict or {})


def after_verdict(turn: Turn) -> str:
    if turn.answers.go == "later":
        return END
    return "planning" if (turn.answers.verdict or {}).get("approved") else "question"


PITCH_FLOW = Flow(
    "genius_pitch",
    answers=PitchAnswers,
    begin=begin_pitch,
    starts=("passion", "question", END),
    steps=(
        Step("passion", ask="genius/ask_passion", context=lambda turn: {"interests": interests(turn)},
             expect=Passion(), save="passion", then="question"),
        Step("question", ask="genius/ask_question", context=pitch_context, expect=Text(max_length=300),
             save="question", then=lambda turn: "rethink" if is_quick_search(turn) else "why",
             branches={"rethink": "a quick search would answer it", "why": "an open question"}),
        Step("rethink", ask="genius/quick_search", context=pitch_context,
             expect=Choice(("rephrase", "keep"), labels={"rephrase": "genius.rephrase", "keep": "genius.keep"}),
             save="rethink", then=lambda turn: "question" if turn.answers.rethink == "rephrase" else "why",
             branches={"question": "rephrase", "why": "keep it"}),
        Step("why", ask="genius/ask_why", context=pitch_context, expect=Text(), save="why", then="audience"),
        Step("audience", ask="genius/ask_audience", context=pitch_context, expect=Text(), save="audience",
             effect=save_pitch, then=after_pitch,
             branches={"approval": "approval required", "planning": "no approval needed"}),
        WaitFor("approval", say="genius/pitch_sent", save="verdict", then="verdict"),
        Step("verdict", ask="genius/verdict", context=verdict_context,
             expect=Choice(("go", "later"), labels={"go": "genius.go", "later": "genius.later"}), save="go",
             then=after_verdict, branches={"planning": "approved", "question": "changes asked", END: "later"}),
        SubFlow("planning", flow="genius_plan"),
    ),
)


# -- the adviser decides ----------------------------------------------------------------------------


@dataclass
class FeedbackAnswers(Answers):
    student: int | None = None


def pending_pitch(turn: Turn, args: str) -> dict | None:
    """The project whose pitch the command names (a student id), if this adult may see that student."""
    if not args.strip().isdigit():
        turn.say("genius/no_such_pitch")
        return None
    student_id = int(args)
    if not access.may_see(turn.tx, turn.person_id, student_id, access.View.students):
        turn.say("genius/no_such_pitch")
        return None
    project = records.active_project(turn.tx, student_id)
    if project is None or project["approval"] is None:
        turn.say("genius/no_such_pitch")
        return None
    if project["approval"] != Approval.pending:
        decided_already(turn, project)
        return None
    return project


def decided_already(turn: Turn, project: dict) -> None:
    """Another adviser acted first: say who, and what they decided."""
    row = turn.tx.one("SELECT p.given_name, p.family_name, a.action FROM adultaction a JOIN person p ON p.id = a.actor_id "
                      "WHERE a.subject = 'geniusproject' AND a.subject_id = ? ORDER BY a.id DESC LIMIT 1",
                      (project["id"],))
    turn.say("genius/already_decided", by=f"{row[0]} {row[1]}".strip() if row else None,
             approved=project["approval"] in (Approval.approved, Approval.not_required))


def decide(turn: Turn, project: dict, approved: bool, comment: str | None) -> None:
    """Record the first adviser's decision and resume the student's pitch; the other advisers learn who decided."""
    tx = turn.tx
    approval = Approval.approved if approved else Approval.changes
    taken = tx.one("UPDATE geniusproject SET approval = ?, approval_comment = ?, stage = ?, updated_at = ? "
                   "WHERE id = ? AND approval = 'pending' RETURNING id",
                   (approval.value, comment, (Stage.plan if approved else Stage.pitch).value, tx.ts(turn.now),
                    project["id"]))
    if taken is None:  # another adviser got there within the same moment
        decided_already(turn, records.project_by_id(tx, project["id"]))
        return
    student_id = project["person_id"]
    tx.execute("INSERT INTO adultaction (actor_id, student_id, subject, subject_id, action, note, at) "
               "VALUES (?, ?, 'geniusproject', ?, ?, ?, ?)",
               (turn.person_id, student_id, project["id"], approval.value, comment, tx.ts(turn.now)))
    tx.audit("genius", f"pitch_{approval}", student_id, {"project": project["id"], "by": turn.person_id}, turn.now)
    adviser = turn.tx.one("SELECT given_name, family_name FROM person WHERE id = ?", (turn.person_id,))
    by = f"{adviser[0]} {adviser[1]}".strip()
    student = tx.one("SELECT given_name, family_name FROM person WHERE id = ?", (student_id,))
    verdict = {"approved": approved, "comment": comment, "by": by}
    if not turn.engine.act_on(turn, student_id, PITCH_FLOW.name, verdict):
        # The student's pitch is not waiting (it was set aside): tell them, /project picks it up.
        sender = tx.sender_of_person(student_id)
        if sender is not None:
            locale = sender.locale or sender.school_locale or turn.locale
            tx.enqueue(student_id, sender.platform, sender.chat_id, locale,
                       Outbound("genius/verdict_note", verdict, (Button("menu.project", "/project"),)), turn.now)
    turn.say("genius/you_decided", approved=approved, student=student[0])
    for adviser_id, platform, chat_id, locale, _ in advisers_of(turn, student_id):
        if adviser_id != turn.person_id:
            turn.others.append((adviser_id, platform, chat_id, locale or turn.locale,
                                Outbound("genius/decided_by", {"by": by, "approved": approved,
                                                               "student": f"{student[0]} {student[1]}".strip()})))


def approve_pitch(engine: "Engine", turn: Turn, args: str) -> None:
    project = pending_pitch(turn, args)
    if project is not None:
        decide(turn, project, approved=True, comment=None)


def ask_for_changes(engine: "Engine", turn: Turn, args: str) -> None:
    """Ask for changes: the adviser writes what should change (the comment the student reads)."""
    project = pending_pitch(turn, args)
    if project is not None:
        engine.start_flow(turn, FEEDBACK_FLOW.name)
        turn.answers.student = project["person_id"]
        turn.replies[-1] = FEEDBACK_FLOW.step("comment").prompt(turn)  # asked again, now naming the student


def send_changes(turn: Turn, comment: str) -> None:
    project = records.active_project(turn.tx, turn.answers.student)
    if project is None or project["approval"] != Approval.pending:
        if project is not None:
            decided_already(turn, project)
        return
    decide(turn, project, approved=False, comment=comment)


def feedback_context(turn: Turn) -> dict:
    row = turn.tx.one("SELECT given_name FROM person WHERE id = ?", (turn.answers.student,))
    project = records.active_project(turn.tx, turn.answers.student)
    return {"student": row[0] if row else "", "question": project["question"] if project else None}


FEEDBACK_FLOW = Flow("genius_feedback", answers=FeedbackAnswers, steps=(
    Step("comment", ask="genius/ask_comment", context=feedback_context, expect=Text(), effect=send_changes),
))


# -- plan ---------------------------------------------------------------------------------------------


@dataclass
class PlanAnswers(Answers):
    milestone: str | None = None
    due: str | None = None  # ISO date of the milestone being planned
    holiday: str | None = None  # the closure it falls on
    keep: str | None = None
    another: str | None = None
    planned: list = field(default_factory=list)  # [{"text", "due"}], written when the plan is done


def begin_plan(turn: Turn) -> str:
    project = records.active_project(turn.tx, turn.person_id)
    if project is None or project["stage"] != Stage.plan:
        if project is None:
            turn.say("genius/no_project", buttons=(Button("menu.project", "/project"),))
        else:
            turn.say("genius/status", **status_context(turn, project))
        return END
    return "milestone"


def check_due(turn: Turn, day: date) -> None:
    """A milestone after the term's end is refused; one on a holiday is pointed out."""
    project = records.active_project(turn.tx, turn.person_id)
    calendar = calendar_of(turn)
    term = calendar.first(CalendarKind.term, turn.today)
    last = project["term_ends_on"] or (term.ends_on if term else None)
    if last is not None and day > last:
        raise Invalid("genius/after_term", last=last)
    holiday = calendar.first(CalendarKind.holiday, day)
    turn.answers.due = day.isoformat()
    turn.answers.holiday = holiday.title if holiday else None
    if holiday is None:
        add_milestone(turn)


def add_milestone(turn: Turn) -> None:
    turn.answers.planned.append({"text": turn.answers.milestone, "due": turn.answers.due})


def keep_on_holiday(turn: Turn, choice: str) -> None:
    if choice == "keep":
        add_milestone(turn)


def milestone_context(turn: Turn) -> dict:
    return {"n": len(turn.answers.planned) + 1, "milestone": turn.answers.milestone,
            "due": date.fromisoformat(turn.answers.due) if turn.answers.due else None,
            "holiday": turn.answers.holiday, "planned": planned_list(turn), "least": MIN_MILESTONES,
            "most": MAX_MILESTONES}


def planned_list(turn: Turn) -> list[dict]:
    return [{"text": m["text"], "due": date.fromisoformat(m["due"])} for m in turn.answers.planned]


def enough_or_full(turn: Turn) -> bool:
    """Ask "another?" only between the least and the most milestones a plan has."""
    return not MIN_MILESTONES <= len(turn.answers.planned) < MAX_MILESTONES


def after_milestone(turn: Turn) -> str:
    count = len(turn.answers.planned)
    if count < MIN_MILESTONES or (count < MAX_MILESTONES and turn.answers.another == "another"):
        return "milestone"
    return END


def save_plan(turn: Turn) -> None:
    """The milestones are written together, in date order, and the project begins."""
    project = records.active_project(turn.tx, turn.person_id)
    if project is None or len(turn.answers.planned) < MIN_MILESTONES:
        return
    tx = turn.tx
    for position, milestone in enumerate(sorted(turn.answers.planned, key=lambda m: m["due"]), start=1):
        tx.execute("INSERT INTO geniusmilestone (project_id, person_id, position, text, due_on) VALUES (?, ?, ?, ?, ?)",
                   (project["id"], turn.person_id, position, milestone["text"],
                    tx.day(date.fromisoformat(milestone["due"]))))
    records.update(tx, project["id"], turn.now, stage=Stage.project)
    turn.say("genius/plan_saved", milestones=sorted(planned_list(turn), key=lambda m: m["due"]),
             weekday=setting(turn, "genius_hour_day"))


PLAN_FLOW = Flow(
    "genius_plan",
    answers=PlanAnswers,
    begin=begin_plan,
    starts=("milestone", END),
    finish=save_plan,
    steps=(
        Step("milestone", ask="genius/ask_milestone", context=milestone_context, expect=Text(max_length=200),
             save="milestone", then="due"),
        Step("due", ask="genius/ask_due", context=milestone_context,
             expect=Day(quick=("friday",)), effect=check_due,
             then=lambda turn: "holiday" if turn.answers.holiday else "another",
             branches={"holiday": "on a holiday", "another": "a school day"}),
        Step("holiday", ask="genius/on_holiday", context=milestone_context,
             expect=Choice(("keep", "change"), labels={"keep": "genius.keep_day", "change": "genius.change_day"}),
             save="keep", effect=keep_on_holiday, then=lambda turn: "due" if turn.answers.keep == "change" else "another",
             branches={"due": "change the day", "another": "keep it"}),
        Step("another", ask="genius/ask_another", context=milestone_context, skip=enough_or_full,
             expect=Choice(("another", "done"), labels={"another": "genius.another", "done": "genius.plan_done"}),
             save="another", then=after_milestone, branches={"milestone": "another one", END: "that's the plan"}),
    ),
)


# -- the weekly project check-in --------------------------------------------------------------------


@dataclass
class CheckinAnswers(Answers):
    started: str | None = None  # when the check-in began: evidence shared since then is tied to it
    progress: str | None = None
    next_step: str | None = None
    blocker: str | None = None
    help: str | None = None
    checkin: int | None = None
    open_milestones: list = field(default_factory=list)
    go: str | None = None


def begin_checkin(turn: Turn) -> str:
    """The check-in fits the project's stage: after the presentation it is the reflection's turn."""
    project = records.active_project(turn.tx, turn.person_id)
    if project is None:
        turn.say("genius/no_project", buttons=(Button("menu.project", "/project"),))
        return END
    if project["stage"] == Stage.project:
        turn.answers.started = turn.now.isoformat()
        return "progress"
    if project["stage"] == Stage.product:
        return "making"
    if project["stage"] == Stage.presentation and project["presentation_on"] and project["presentation_on"] <= turn.today:
        return "reflecting"
    turn.say("genius/status", **status_context(turn, project))
    return END


def store_checkin(turn: Turn, evidence: str) -> None:
    """The check-in is written with its evidence; a yes to help becomes a help request for the adviser."""
    tx, answers = turn.tx, turn.answers
    project = records.active_project(tx, turn.person_id)
    help_id = None
    if answers.help == "yes":
        help_id = tx.insert("INSERT INTO helprequest (person_id, text, status, created_at) VALUES (?, ?, 'open', ?)",
                            (turn.person_id, answers.blocker or answers.next_step, tx.ts(turn.now)))
    checkin_id = tx.insert(
        "INSERT INTO geniuscheckin (project_id, person_id, progress, next_step, blocker, help_request_id, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", (project["id"], turn.person_id, answers.progress, answers.next_step,
                                         answers.blocker, help_id, tx.ts(turn.now)))
    answers.checkin = checkin_id
    keep_links(turn, evidence)
    shared = records.claim_evidence(tx, turn.person_id, project["id"], datetime.fromisoformat(answers.started),
                                    Stage.project, checkin_id=checkin_id)
    answers.open_milestones = [{"id": m["id"], "text": m["text"]} for m in records.open_milestones(tx, project["id"])]
    turn.say("genius/checkin_saved", evidence=shared, helped=help_id is not None)


def keep_links(turn: Turn, text: str) -> None:
    """A link typed where a chat app does not recognise links (the terminal) is kept as evidence too."""
    for url in URL.findall(text or ""):
        if turn.tx.one("SELECT 1 FROM artifact WHERE person_id = ? AND ref = ? AND created_at >= ?",
                       (turn.person_id, url, turn.tx.ts(turn.now))) is None:
            turn.tx.execute("INSERT INTO artifact (person_id, kind, ref, caption, created_at) VALUES (?, 'link', ?, ?, ?)",
                            (turn.person_id, url, text, turn.tx.ts(turn.now)))


def mark_done(turn: Turn, milestone_id: int | None) -> None:
    """A milestone done (the check-in's evidence is evidence of it); the last one moves the project to its product."""
    tx = turn.tx
    project = records.active_project(tx, turn.person_id)
    if milestone_id is not None:
        tx.execute("UPDATE geniusmilestone SET done_on = ? WHERE id = ? AND project_id = ?",
                   (tx.day(turn.today), milestone_id, project["id"]))
        tx.execute("UPDATE geniusevidence SET milestone_id = ? WHERE checkin_id = ?", (milestone_id, turn.answers.checkin))
    left = records.open_milestones(tx, project["id"])
    if not left:
        records.update(tx, project["id"], turn.now, stage=Stage.product)
    turn.say("genius/keep_going", marked=milestone_id is not None, left=len(left),
             next_milestone=left[0] if left else None)


def all_done(turn: Turn) -> bool:
    project = records.active_project(turn.tx, turn.person_id)
    return project is not None and project["stage"] == Stage.product


def no_open_milestones(turn: Turn) -> bool:
    return not turn.answers.open_milestones


CHECKIN_FLOW = Flow(
    "genius_checkin",
    answers=CheckinAnswers,
    begin=begin_checkin,
    starts=("progress", "making", "reflecting", END),
    steps=(
        Step("progress", ask="genius/ask_progress", expect=Text(), save="progress", then="next_step"),
        Step("next_step", ask="genius/ask_next_step", expect=Text(), save="next_step", then="blocker"),
        Step("blocker", ask="genius/ask_blocker",
             expect=Choice(("none",), labels={"none": "genius.no_blocker"}, or_text=Text()),
             effect=lambda turn, value: setattr(turn.answers, "blocker", None if value == "none" else value),
             then=lambda turn: "help" if turn.answers.blocker else "evidence",
             branches={"help": "a blocker", "evidence": "nothing in the way"}),
        Step("help", ask="genius/ask_help", context=lambda turn: {"blocker": turn.answers.blocker},
             expect=Choice(("yes", "no")), save="help", then="evidence"),
        Step("evidence", ask="genius/ask_evidence",
             expect=Choice(("skip",), labels={"skip": "genius.no_evidence"}, or_text=Text()),
             effect=store_checkin, then="milestone"),
        Step("milestone", ask="genius/ask_milestone_done", skip=no_open_milestones,
             context=lambda turn: {"milestones": turn.answers.open_milestones},
             expect=OpenMilestone(), effect=mark_done, then="product_now"),
        Step("product_now", ask="genius/all_done", skip=lambda turn: not all_done(turn),
             expect=Choice(("go", "later"), labels={"go": "genius.go", "later": "genius.later"}), save="go",
             then=lambda turn: "making" if turn.answers.go == "go" else END,
             branches={"making": "on to the product", END: "later"}),
        SubFlow("making", flow="genius_product"),
        SubFlow("reflecting", flow="genius_reflection"),
    ),
)


# -- product and presentation -----------------------------------------------------------------------


def not_at_this_stage(turn: Turn, project: dict | None) -> str:
    """No project, or one at another stage: say where it stands (or how to start one); the flow ends."""
    if project is None:
        turn.say("genius/no_project", buttons=(Button("menu.project", "/project"),))
    else:
        turn.say("genius/status", **status_context(turn, project))
    return END


@dataclass
class ProductAnswers(Answers):
    started: str | None = None
    product: str | None = None
    audience: str | None = None


def begin_product(turn: Turn) -> str:
    project = records.active_project(turn.tx, turn.person_id)
    if project is None or project["stage"] not in (Stage.project, Stage.product):
        return not_at_this_stage(turn, project)
    turn.answers.started = turn.now.isoformat()
    return "product"


def save_product(turn: Turn, evidence: str) -> None:
    project = records.active_project(turn.tx, turn.person_id)
    keep_links(turn, evidence)
    shared = records.claim_evidence(turn.tx, turn.person_id, project["id"], datetime.fromisoformat(turn.answers.started),
                                    Stage.product)
    records.update(turn.tx, project["id"], turn.now, product=turn.answers.product, stage=Stage.product)
    if shared:
        turn.say("genius/evidence_kept", count=shared)


def save_presentation_day(turn: Turn, day: date) -> None:
    project = records.active_project(turn.tx, turn.person_id)
    records.update(turn.tx, project["id"], turn.now, presentation_on=day, stage=Stage.presentation)


def save_presentation_audience(turn: Turn, audience: str) -> None:
    project = records.active_project(turn.tx, turn.person_id)
    records.update(turn.tx, project["id"], turn.now, presentation_audience=audience)
    turn.say("genius/presentation_planned", day=project["presentation_on"], audience=audience)


PRODUCT_FLOW = Flow(
    "genius_product",
    answers=ProductAnswers,
    begin=begin_product,
    starts=("product", END),
    steps=(
        Step("product", ask="genius/ask_product", expect=Text(), save="product", then="product_evidence"),
        Step("product_evidence", ask="genius/ask_product_evidence",
             expect=Choice(("skip",), labels={"skip": "genius.no_evidence"}, or_text=Text()),
             effect=save_product, then="presentation_day"),
        Step("presentation_day", ask="genius/ask_presentation_day", expect=Day(quick=("friday",)),
             effect=save_presentation_day, then="presentation_audience"),
        Step("presentation_audience", ask="genius/ask_presentation_audience", expect=Text(),
             effect=save_presentation_audience),
    ),
)


@dataclass
class ReflectionAnswers(Answers):
    learned: str | None = None
    differently: str | None = None
    proud: str | None = None


def begin_reflection(turn: Turn) -> str:
    project = records.active_project(turn.tx, turn.person_id)
    if project is None or project["stage"] != Stage.presentation or project["presentation_on"] is None:
        return not_at_this_stage(turn, project)
    if project["presentation_on"] > turn.today:
        turn.say("genius/not_yet_presented", day=project["presentation_on"])
        return END
    return "learned"


def finish_project(turn: Turn, proud: str) -> None:
    project = records.active_project(turn.tx, turn.person_id)
    answers = turn.answers
    records.update(turn.tx, project["id"], turn.now, learned=answers.learned, differently=answers.differently,
                   proud=proud, stage=Stage.done, status="finished", finished_at=turn.tx.ts(turn.now))
    turn.say("genius/finished", question=project["question"] or project["passion"])


REFLECTION_FLOW = Flow(
    "genius_reflection",
    answers=ReflectionAnswers,
    begin=begin_reflection,
    starts=("learned", END),
    steps=(
        Step("learned", ask="genius/ask_learned", expect=Text(), save="learned", then="differently"),
        Step("differently", ask="genius/ask_differently", expect=Text(), save="differently", then="proud"),
        Step("proud", ask="genius/ask_proud", expect=Text(), save="proud", effect=finish_project),
    ),
)


# -- dropping a project (it stays in the student's history) ----------------------------------------


@dataclass
class DropAnswers(Answers):
    sure: str | None = None


def begin_drop(turn: Turn) -> str:
    if records.active_project(turn.tx, turn.person_id) is None:
        turn.say("genius/no_project", buttons=(Button("menu.project", "/project"),))
        return END
    return "sure"


def drop_project(turn: Turn, sure: str) -> None:
    project = records.active_project(turn.tx, turn.person_id)
    if sure == "drop" and project is not None:
        records.update(turn.tx, project["id"], turn.now, status="dropped", finished_at=turn.tx.ts(turn.now))
        turn.tx.audit("genius", "project_dropped", turn.person_id, {"project": project["id"]}, turn.now)
    turn.say("genius/dropped", dropped=sure == "drop")


DROP_FLOW = Flow("genius_drop", answers=DropAnswers, begin=begin_drop, starts=("sure", END), steps=(
    Step("sure", ask="genius/ask_drop",
         context=lambda turn: {"question": (records.active_project(turn.tx, turn.person_id) or {}).get("question")},
         expect=Choice(("drop", "keep"), labels={"drop": "genius.drop", "keep": "genius.keep_project"}),
         save="sure", effect=drop_project),
))


# -- /project: where the project stands, and what comes next -------------------------------------------

NEXT = {  # stage → (the flow that moves it on, its button)
    Stage.plan: ("genius_plan", "plan"),
    Stage.project: ("genius_checkin", "checkin"),
    Stage.product: ("genius_product", "product"),
    Stage.presentation: ("genius_reflection", "reflect"),
}
ARGS = {"pitch": "genius_pitch", "plan": "genius_plan", "checkin": "genius_checkin",
        "product": "genius_product", "reflect": "genius_reflection", "drop": "genius_drop"}


def status_context(turn: Turn, project: dict) -> dict:
    """The stage, the next step and the newest check-in, for the student's own view."""
    open_ones = records.open_milestones(turn.tx, project["id"])
    last = records.checkins(turn.tx, project["id"], limit=1)
    return {"stage": project["stage"], "passion": project["passion"],
            "question": project["question"], "approval": project["approval"], "comment": project["approval_comment"],
            "next_milestone": open_ones[0] if open_ones else None,
            "done": len(records.milestones(turn.tx, project["id"])) - len(open_ones),
            "total": len(records.milestones(turn.tx, project["id"])),
            "last_checkin": {"on": last[0]["created_at"].date(), "next_step": last[0]["next_step"],
                             "blocker": last[0]["blocker"]} if last else None,
            "presentation_on": project["presentation_on"],
            "presented": project["presentation_on"] is not None and project["presentation_on"] <= turn.today}


def show_project(engine: "Engine", turn: Turn, args: str) -> None:
    """`/project`: start one, or see its stage and next step with a button for it; `/project NEXT` opens NEXT."""
    wanted = args.strip().lower()
    project = records.active_project(turn.tx, turn.person_id)
    if wanted in ARGS and (project is not None or ARGS[wanted] == "genius_pitch"):
        engine.start_flow(turn, ARGS[wanted])
        return
    if project is None:
        engine.start_flow(turn, PITCH_FLOW.name)
        return
    buttons: list[Button] = []
    if project["stage"] == Stage.pitch and project["approval"] in (None, Approval.changes):
        buttons.append(Button("genius.revise", "/project pitch"))
    elif project["stage"] in NEXT:
        buttons.append(Button(f"genius.next_{NEXT[project['stage']][1]}", f"/project {NEXT[project['stage']][1]}"))
        if project["stage"] == Stage.project:
            buttons.append(Button("genius.next_product", "/project product"))
    if project["stage"] in (Stage.plan, Stage.project):
        buttons.append(Button("genius.drop", "/project drop"))
    turn.say("genius/status", buttons=tuple(buttons), **status_context(turn, project))


def list_projects(engine: "Engine", turn: Turn, _args: str) -> None:
    """`/projects`: each advisee's stage, newest check-in and blocker; a pitch waiting gets its buttons."""
    students = access.visible_students(turn.tx, turn.person_id, access.View.students)
    found = records.overviews(turn.tx, [student["id"] for student in students])
    rows = [{**student, "project": found.get(student["id"])} for student in students]
    buttons = tuple(button for row in rows if row["project"] and row["project"]["approval"] == Approval.pending
                    for button in (Button("genius.approve_who", f"/pitchok {row['id']}", {"name": row["given_name"]}),
                                   Button("genius.changes_who", f"/pitchfix {row['id']}", {"name": row["given_name"]})))
    turn.say("genius/projects", students=rows, buttons=buttons)


# -- the adviser digest -----------------------------------------------------------------------------


def blocked(tx, student_ids: list[int], today: date) -> dict[int, list[Reason]]:
    return {sid: [Reason(level=found["count"] - 1, since=found["since"], evidence=found)]
            for sid, found in records.blocked_projects(tx, student_ids, today).items()}


def missed(tx, student_ids: list[int], today: date) -> dict[int, list[Reason]]:
    now = datetime.combine(today, time(23, 59), tzinfo=timezone.utc)
    return {sid: [Reason(level=found["missed"], since=found["since"], evidence=found)]
            for sid, found in records.missed_checkins(tx, student_ids, now).items()}


def waiting(tx, student_ids: list[int], today: date) -> dict[int, list[Reason]]:
    return {sid: [Reason(level=1 + (today - found["since"]).days // 7, since=found["since"], evidence=found)]
            for sid, found in records.pitches_waiting(tx, student_ids).items()}


def overview_section(tx, student_ids: list[int], _week: date) -> dict[int, dict]:
    return records.overviews(tx, student_ids)


FEATURE = Feature(
    "genius",
    flows=(PITCH_FLOW, FEEDBACK_FLOW, PLAN_FLOW, CHECKIN_FLOW, PRODUCT_FLOW, REFLECTION_FLOW, DROP_FLOW),
    commands=(Command("project", run=show_project, menu=4),
              Command("projects", run=list_projects, roles=ADVISERS, menu=3),
              Command("pitchok", run=approve_pitch, roles=ADULTS, listed=False),
              Command("pitchfix", run=ask_for_changes, roles=ADULTS, listed=False)),
    triggers=(Trigger("project_checkin", day="genius_hour_day", priority=3, flow=CHECKIN_FLOW.name,
                      quiet_in_exams=True),),
    settings=SETTINGS,
    digest=(DigestSection("project", collect=overview_section),),
    concerns=(Concern("genius_blocked", "genius/concern_blocked", collect=blocked, weight=20),
              Concern("genius_missed", "genius/concern_missed", collect=missed, weight=15),
              Concern("genius_pitch_waiting", "genius/concern_pitch_waiting", collect=waiting, weight=10)),
    highlights=(Highlight("genius_milestone", "genius/highlight_milestone", collect=records.milestones_done),
                Highlight("genius_presented", "genius/highlight_presented", collect=records.presentations_given)),
    person_tables=records.PERSON_TABLES,
)
