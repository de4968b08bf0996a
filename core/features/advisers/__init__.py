"""Advisers: who needs them first and what to say to each (SPEC §1, §5; issue 16).

    /students          each advisee's week at a glance; "I'm on it" for open alerts, "Handled" for help requests
    /student NAME      one student's summary (fuzzy on names; only students the adult may see)
    /digest            the weekly digest now (the scheduler sends it at the adviser's day and time)
    /followedup ID     "Followed up" (a digest's button): recorded once, then an optional note
    /settings          the digest's day and time, and the language:  day ─► time ─► language ─► end
                       (on Slack's App Home the same as a form, `digest_settings`, in a modal)
    /alerts            the open safety alerts and help requests the adult may act on (a counselor, an
                       administrator: their school's), with "I'm on it" and "Handled"
    /figures           the class figures of every group the adult may see (an administrator: their school's)
    /home              the dashboard Slack's App Home shows: the triage, the figures, a summary button per student;
                       a counselor's and an administrator's: the open alerts (and an administrator's, the figures)

The ranking is `triage.py`'s documented score; the figures and chart are `figures.py`'s; who may
see whom is `core.domain.access`. Other features add triage reasons and highlights through
`Concern` and `Highlight` in the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time
from typing import TYPE_CHECKING, Any

from core.domain import access, dates, records
from core.domain.messages import Button
from core.domain.models import DEFAULT_LOCALE, Role
from core.domain.settings import Clock, Key, SettingsCatalog, Weekday
from core.domain.store import Tx
from core.engine.flow import END, Answers, Choice, Flow, Step, Text, TimeOfDay, Turn
from core.engine.registry import ADULTS, ADVISERS, Command, Feature, Form, Part, Trigger, When
from core.features.advisers import figures
from core.features.advisers.digest import compose, follow_up_button, keep_chart, with_chart
from core.features.advisers.triage import CONCERNS, HIGHLIGHTS, Entry, reasons_of, record_follow_up
from core.features.advisers.views import find_students, summary, week_at_a_glance, with_open_items
from core.render.templates import LOCALES
from core.schedule.policy import choose_time_in

if TYPE_CHECKING:
    from core.engine.pipeline import Engine

DIGEST = "adviser_digest"  # the trigger's kind, and the key of an adviser's chosen time
DIGEST_DAY, DIGEST_TIME = "adviser.digest_day", "adviser.digest_time"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
OFF = "off"
LIST_PAGE = 12  # students per message of the advisees list: within every chat's limit even when each has a request
GROUPS_PAGE = 6  # advisory groups per message of the figures: about 2,000 characters, within every chat's limit
FIGURES_ROLES = frozenset(role for role, (_, views) in access.SCOPES.items() if access.View.figures in views)
SETTINGS_FORM = "digest_settings"  # the form behind Slack's App Home settings modal
SETTINGS_KEYS = (Key(DIGEST_DAY, Weekday(), 0, "the advisers' weekly digest: the school's default day (or off)"),
                 Key(DIGEST_TIME, Clock(), time(7, 30), "the advisers' weekly digest: the school's default time"))


# -- the advisees list -------------------------------------------------------------------------------


def list_students(engine: "Engine", turn: Turn, _args: str) -> None:
    """The students this adult may see, each one's week in plain words, with "I'm on it" for what is open."""
    students = access.visible_students(turn.tx, turn.person_id, access.View.students)
    say_pages(turn, "adviser/students", week_at_a_glance(turn.tx, students, turn.week_start, turn.today))


def list_alerts(engine: "Engine", turn: Turn, _args: str) -> None:
    """`/alerts`: the open safety alerts and help requests of the students this adult may see in alerts (a counselor
    or an administrator: their school's), with "I'm on it" and "Handled"."""
    students = access.visible_students(turn.tx, turn.person_id, access.View.alerts)
    say_pages(turn, "adviser/alerts", with_open_items(turn.tx, students, turn.today))


def say_pages(turn: Turn, template: str, listing: list[dict]) -> None:
    """A list of students a page at a time (a chat message holds about 4,000 characters), each page with the
    buttons that act on what is open in it."""
    for start in range(0, max(len(listing), 1), LIST_PAGE):
        page = listing[start:start + LIST_PAGE]
        buttons = tuple(
            [Button("adviser.on_it_alert", f"/onit {alert['id']}", {"name": student["given_name"]})
             for student in page for alert in student["alerts"] if not alert["on_it"]]
            + [Button("adviser.handled_help", f"/handled {request['id']}", {"name": student["given_name"]})
               for student in page for request in student["help_requests"]])  # the check-in's /handled
        turn.say(template, students=page, first=start + 1, total=len(listing), buttons=buttons)


# -- one student's summary ---------------------------------------------------------------------------


def show_summary(engine: "Engine", turn: Turn, args: str) -> None:
    """`/student NAME`: the summary of the one student the name finds, a choice when several fit, else nothing."""
    if not args.strip():
        turn.say("adviser/ask_student_name")
        return
    found = find_students(turn.tx, turn.person_id, args)
    if not found:
        turn.say("adviser/no_such_student", name=args.strip())
    elif len(found) > 1:
        turn.say("adviser/pick_student", count=len(found), buttons=tuple(
            Button("adviser.student", f"/student #{student['id']}",
                   {"name": f"{student['given_name']} {student['family_name']}"}) for student in found))
    else:
        turn.say("adviser/summary", buttons=(follow_up_button(found[0]),),
                 **summary(turn.tx, engine.registry, found[0], turn.today, turn.catalog, turn.locale))


# -- the class figures, group by group ---------------------------------------------------------------


def show_figures(engine: "Engine", turn: Turn, _args: str) -> None:
    """`/figures`: the figures of every student this adult may see in figures (an administrator: their school's),
    then each advisory group's, a few groups to a message: goals set, reviews, goals done, by category, against
    last week."""
    ids = access.visible_ids(turn.tx, turn.person_id, access.View.figures)
    groups = figures.group_figures(turn.tx, ids, turn.today)
    turn.say("adviser/figures", week=figures.reported_week(turn.today).isoformat(), groups=len(groups),
             figures=figures.class_figures(turn.tx, ids, turn.today)[0])
    for start in range(0, len(groups), GROUPS_PAGE):
        turn.say("adviser/group_figures", groups=groups[start:start + GROUPS_PAGE])


# -- the dashboard (Slack's App Home) -----------------------------------------------------------------


def show_home(engine: "Engine", turn: Turn, args: str) -> None:
    """The live dashboard: the triage with its "Followed up" buttons and the class figures (the digest without
    its chart), then every student with a button that opens their summary; for an adult who sees their school
    instead (a counselor, an administrator), its open alerts and help requests, and the figures when theirs."""
    if turn.sender.role not in ADVISERS:
        list_alerts(engine, turn, args)
        if turn.sender.role in FIGURES_ROLES:
            show_figures(engine, turn, args)
        return
    turn.replies.extend(compose(turn.tx, engine.registry, turn.catalog, turn.person_id, turn.today, turn.locale,
                                turn.sender.given_name or "", chart=False).messages)
    students = access.visible_students(turn.tx, turn.person_id, access.View.home)
    turn.say("adviser/home_students", count=len(students), buttons=(
        Button("menu.settings", "/settings"),  # the digest's day, time and language: a form where the dashboard has one
        *(Button("adviser.student", f"/student #{student['id']}",
                 {"name": f"{student['given_name']} {student['family_name']}"}) for student in students)))


# -- the digest and its follow-ups -------------------------------------------------------------------


def send_digest(engine: "Engine", turn: Turn, _args: str) -> None:
    """This adviser's digest now: the header with the chart, then the triage in chunks with their buttons."""
    digest = compose(turn.tx, engine.registry, turn.catalog, turn.person_id, turn.today, turn.locale,
                     turn.sender.given_name or "")
    ref = keep_chart(turn.tx, engine.settings.file_store, digest.png, turn.now) if digest.png else None
    turn.replies.extend(with_chart(digest, ref))
    turn.tx.audit("engine", "digest_built", turn.person_id, {"messages": len(digest.messages)}, turn.now)


@dataclass
class FollowUpNote(Answers):
    action: int | None = None
    note: str | None = None


def followed_up(engine: "Engine", turn: Turn, args: str) -> None:
    """"Followed up" on a student: recorded once (a repeated tap changes nothing), then an optional note."""
    tx = turn.tx
    student_id = int(args.strip().lstrip("#")) if args.strip().lstrip("#").isdigit() else None
    student = tx.one("SELECT given_name, family_name FROM person WHERE id = ?", (student_id,)) if student_id else None
    if student is None or not access.may_see(tx, turn.person_id, student_id, access.View.summary):
        turn.say("adviser/no_such_student", name=args.strip())
        return
    snapshot = Entry({"id": student_id}, reasons_of(tx, engine.registry, [student_id], turn.today).get(
        student_id, [])).snapshot
    action = record_follow_up(tx, turn.person_id, snapshot, student_id, None, turn.now)
    if action is None:
        turn.say("adviser/already_followed_up", name=student[0])
        return
    turn.say("adviser/followed_up", name=student[0])
    engine.start_flow(turn, "followup_note")
    turn.answers.action = action


def save_note(turn: Turn, choice: str) -> None:
    """The note goes on the follow-up it belongs to (only this adult's own)."""
    if choice != "none":
        turn.tx.execute("UPDATE adultaction SET note = ? WHERE id = ? AND actor_id = ?",
                        (choice, turn.answers.action, turn.person_id))
    turn.say("adviser/note_saved", noted=choice != "none")


NOTE_FLOW = Flow("followup_note", answers=FollowUpNote, steps=(
    Step("note", ask="adviser/ask_note", expect=Choice(("none",), labels={"none": "adviser.no_note"}, or_text=Text()),
         save="note", effect=save_note),
))


# -- the adviser's settings: the /settings chat flow, and the same as a form (Slack's App Home modal) ------------


@dataclass
class DigestSettings(Answers):
    day: str | None = None
    at: str | None = None
    language: str | None = None


def apply_settings(turn: Turn, day: str, at: str | None, language: str) -> None:
    """The digest's new day and time (the next planning moves this week's digest) and the language, confirmed."""
    weekday = None if day == OFF else DAYS.index(day)
    choose_time_in(turn.tx, turn.person_id, DIGEST, weekday, time.fromisoformat(at) if at else None, turn.now)
    records.set_person(turn.tx, turn.person_id, locale=language)
    turn.sender.locale = language
    turn.say("adviser/settings_saved", day=day, at=at)


def save_settings(turn: Turn) -> None:
    """The chat flow's answers, saved."""
    apply_settings(turn, turn.answers.day, turn.answers.at, turn.answers.language)


def chosen_digest_time(tx: Tx, person_id: int) -> tuple[int | None, str | None] | None:
    """The adviser's own digest weekday (None: off) and time, or None when they keep the school's."""
    return tx.one("SELECT weekday, at FROM chosentime WHERE person_id = ? AND kind = ?", (person_id, DIGEST))


def settings_context(turn: Turn) -> dict[str, Any]:
    """What the adviser has now: their own day and time, else the school's."""
    row = chosen_digest_time(turn.tx, turn.person_id)
    return {"chosen": row is not None, "day": (DAYS[row[0]] if row[0] is not None else OFF) if row else None,
            "at": row[1] if row else None}


SETTINGS_FLOW = Flow("adviser_settings", answers=DigestSettings, finish=save_settings, steps=(
    Step("day", ask="adviser/ask_digest_day", context=settings_context,
         expect=Choice((*DAYS, OFF), labels={day: f"adviser.day_{day}" for day in (*DAYS, OFF)}), save="day",
         then=lambda turn: "language" if turn.answers.day == OFF else "time", branches={"time": "a day",
                                                                                      "language": "off"}),
    Step("time", ask="adviser/ask_digest_time", expect=TimeOfDay(quick=("07:30", "12:00", "16:00")), save="at",
         then="language"),
    Step("language", ask="adviser/ask_language",
         expect=Choice(LOCALES, labels={locale: f"adviser.language_{locale}" for locale in LOCALES}),
         save="language", then=END),
))


def settings_form_values(tx: Tx, person_id: int) -> dict[str, str]:
    """The form's fields as they stand: the adviser's own day and time, else the school's, and their language."""
    school_id, locale = tx.one("SELECT p.school_id, COALESCE(p.locale, s.locale) FROM person p "
                               "LEFT JOIN school s ON s.id = p.school_id WHERE p.id = ?", (person_id,))
    school = SettingsCatalog(SETTINGS_KEYS).for_school(tx, school_id)
    weekday, at = chosen_digest_time(tx, person_id) or (school[DIGEST_DAY], None)
    return {"day": OFF if weekday is None else DAYS[weekday], "at": at or f"{school[DIGEST_TIME]:%H:%M}",
            "language": locale or DEFAULT_LOCALE}


def typed_time(words: str) -> time | None:
    """A time of day as an adult types it, in either language ("4:15pm", "16h15", "4 de la tarde")."""
    return next((found for locale in LOCALES if (found := dates.parse_time(words, locale))), None)


def settings_form_errors(values: dict) -> dict[str, str]:
    """What the form cannot accept, as field → error template: a day or language not offered, a time not a time
    (none is needed when the digest is off)."""
    errors = {field: "errors/pick_one" for field, offered in (("day", (*DAYS, OFF)), ("language", LOCALES))
              if values.get(field) not in offered}
    if values.get("day") != OFF and typed_time(values.get("at") or "") is None:
        errors["at"] = "errors/need_time"
    return errors


def save_settings_form(engine: "Engine", turn: Turn, values: dict) -> None:
    """The form, saved as the chat flow saves it (the engine lets only adults save it: the form is theirs)."""
    at = None if values["day"] == OFF else f"{typed_time(values['at']):%H:%M}"
    apply_settings(turn, values["day"], at, values["language"])


FEATURE = Feature(
    "adviser",
    flows=(NOTE_FLOW, SETTINGS_FLOW),
    commands=(Command("students", run=list_students, roles=ADVISERS, menu=1),
              Command("home", run=show_home, roles=ADULTS, listed=False, home=True),
              Command("student", run=show_summary, roles=ADULTS, menu=2),
              Command("digest", run=send_digest, roles=ADVISERS, menu=3),
              Command("settings", flow="adviser_settings", roles=ADVISERS, menu=4),
              Command("figures", run=show_figures, roles=FIGURES_ROLES, menu=5),
              Command("alerts", run=list_alerts, roles=ADULTS, menu=6),
              Command("followedup", run=followed_up, roles=ADULTS, listed=False)),
    triggers=(Trigger(DIGEST, when=When.chosen, day=DIGEST_DAY, at=DIGEST_TIME, roles=ADVISERS, command="digest",
                      parts=frozenset({Part.timezone, Part.pauses})),),
    settings=SETTINGS_KEYS,
    forms=(Form(SETTINGS_FORM, values=settings_form_values, errors=settings_form_errors, save=save_settings_form,
                roles=ADVISERS),),
    concerns=CONCERNS,
    highlights=HIGHLIGHTS,
    person_tables=("followup",),
)
