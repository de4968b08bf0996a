"""Features and the registry that gathers them.

A feature is one module (plus its prompt folder, and a migration when it adds tables). It
declares, as data, everything it brings:

    GOALS = Feature(
        "goals",
        flows=(GOALS_FLOW,),
        commands=(Command("goals", flow="goals", menu=1), Command("plan", run=show_plan, menu=3)),
        triggers=(Trigger("goals", flow="goals", day="goals.day", priority=0, holiday_shift=1),),
        settings=(Key("goals.day", Weekday(), 0, "the day students are asked for their weekly goals"),),
        digest=(DigestSection("goals", collect=goals_this_week),),
        person_tables=("goal", "goalreview"),
    )

A feature may also give the adviser's triage its reasons and good news (`concerns=(Concern(...),)`,
`highlights=(Highlight(...),)`: see `Concern`).

The engine's command table, the help, the menus, Telegram's command menu, `companion flows`,
`companion school show`, the scheduler and the property tests all read the registry; nothing
else names a feature.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from core.domain.messages import Button
from core.domain.models import CalendarKind, Role
from core.domain.settings import Clock, Key, SettingsCatalog, Weekday
from core.engine.flow import Flow, Turn
from core.render.templates import PROMPTS_DIR, Catalog, PromptFolder, engine_folders

if TYPE_CHECKING:
    from core.domain.store import Tx
    from core.engine.pipeline import Engine

STUDENTS = frozenset({Role.student})
ADULTS = frozenset({Role.adviser, Role.counselor, Role.admin})
ADVISERS = frozenset({Role.adviser})  # the adults with an advisory group of their own
EVERYONE = STUDENTS | ADULTS


@dataclass(frozen=True)
class Command:
    """Something a person may say at any time: `/name`, or a word from a feature's lexicon.

    `flow` starts (or returns to) a flow; `run` answers at once and the open question stands.
    `menu` places it among the menu's buttons (label `menu.<name>`); its description in the help
    and Telegram's menu is the label `command.<name>`. `home` marks what a dashboard (Slack's App
    Home) shows people of these roles.
    """

    name: str
    flow: str | None = None
    run: Callable[["Engine", Turn, str], None] | None = None
    roles: frozenset[str] = STUDENTS
    menu: int | None = None
    listed: bool = True
    home: bool = False
    when_stopped: bool = False  # also for a person who said /stop or declined (their data is still theirs)

    def __post_init__(self) -> None:
        if (self.flow is None) == (self.run is None):
            raise ValueError(f"command /{self.name} needs exactly one of flow and run")


class When(StrEnum):
    """How a trigger falls due."""

    weekly = "weekly"  # on the school's weekday for it (a setting), at the person's preferred time
    calendar = "calendar"  # on the first school day after a calendar event of a kind ends, at the person's time
    chosen = "chosen"  # on each person's own weekday and time (the school's default until they choose)
    on_demand = "on_demand"  # when asked, for given people (`core.schedule.policy.on_demand`)


class Part(StrEnum):
    """A part of the nudge policy a trigger may take or leave."""

    timezone = "timezone"  # in the person's own time zone (without it: the school's)
    quiet_hours = "quiet_hours"  # never at night or in class time: moved out of them, never sent late into them
    holidays = "holidays"  # never on a holiday or outside term: moved to a school day, or skipped
    pauses = "pauses"  # not while the person has paused
    cap = "cap"  # counts against the weekly cap, dropped in priority order when the week is full
    grace = "grace"  # missed by longer than the grace window (the server was down): skipped, not sent late
    followup = "followup"  # one follow-up when the person does not answer, then a flag for the adviser


ALL_PARTS = frozenset(Part)


# The weekly cap keeps a student's nudges in this order when a week is too full: the one place the
# order is written. Triggers of other kinds come after these, by their own `priority`.
CAP_ORDER = ("report_card", "goals", "review", "checkin", "project_checkin")


def cap_rank(trigger: "Trigger") -> tuple[int, int]:
    """Where a trigger stands in the weekly cap's order (lower is kept first)."""
    if trigger.kind in CAP_ORDER:
        return CAP_ORDER.index(trigger.kind), 0
    return len(CAP_ORDER), trigger.priority


@dataclass(frozen=True)
class Trigger:
    """A nudge: the flow it opens for a person, when it falls due, for whom, and which policy parts bind it.

    `when` says how it falls due: `weekly` on the weekday the setting `day` names; `calendar` on
    the first school day after an event of the calendar kind `after` ends (a grading period);
    `chosen` on each person's own weekday and time, the settings `day` and `at` giving the school's
    default; `on_demand` when `core.schedule.policy.on_demand` asks for it. It is for people of
    `roles` (students, or advisers and other adults), at their preferred time (a chosen trigger: at
    theirs for it). `parts` are the parts of the policy that apply to it (all by default: a
    student's nudge takes them all, an adviser's digest leaves out the follow-up, a safety
    escalation takes none). `priority` orders the nudges when the weekly cap leaves room for
    fewer (lower first; the kinds in `CAP_ORDER` keep that order before any other); `takes_day`
    makes it take the place of the person's other capped nudges of its day (a report-card
    reflection replaces that day's goals nudge, and offers the goals itself); `holiday_shift` moves it off a holiday to the next school day of the week
    (1), the one before (-1), or skips it (0); `quiet_in_exams` skips it in an exam week. A trigger
    with a `command` runs that command for the person instead, through the pipeline, as if they had
    sent it (the adviser's digest: a message composed afresh, not a conversation). A trigger with
    neither flow nor command sends the template `<kind>/nudge` with the menu's buttons.
    """

    kind: str
    day: str | None = None  # the setting key naming the weekday (weekly; chosen: the default weekday)
    priority: int = 0
    flow: str | None = None
    holiday_shift: int = 0
    quiet_in_exams: bool = False
    when: When = When.weekly
    at: str | None = None  # chosen: the setting key naming the default time of day
    after: str | None = None  # calendar: the kind of calendar event whose end it follows
    roles: frozenset[str] = STUDENTS
    parts: frozenset[str] = ALL_PARTS
    command: str | None = None  # run this command for the person instead of opening a flow
    takes_day: bool = False  # the person's other capped nudges of its day are skipped for it

    def __post_init__(self) -> None:
        if self.flow is not None and self.command is not None:
            raise ValueError(f"trigger {self.kind}: a flow or a command, not both")
        object.__setattr__(self, "when", When(self.when))
        object.__setattr__(self, "roles", frozenset(self.roles))
        object.__setattr__(self, "parts", frozenset(Part(part) for part in self.parts))
        needs = {When.weekly: ("day",), When.calendar: ("after",), When.chosen: ("day", "at"), When.on_demand: ()}
        for name in ("day", "at", "after"):
            given = getattr(self, name) is not None
            if given != (name in needs[self.when]):
                verb = "needs" if not given else "takes no"
                label = {When.chosen: "a chosen-time", When.on_demand: "an on-demand"}.get(self.when, f"a {self.when}")
                raise ValueError(f"trigger {self.kind}: {label} trigger {verb} {name!r}")
        if self.after is not None and self.after not in set(CalendarKind):
            raise ValueError(f"trigger {self.kind}: no calendar event kind {self.after!r}")
        if not self.roles or not self.roles <= EVERYONE:
            raise ValueError(f"trigger {self.kind}: roles must be some of {', '.join(sorted(EVERYONE))}")

    def takes(self, part: str) -> bool:
        """Does this part of the policy apply to the trigger?"""
        return part in self.parts


@dataclass(frozen=True)
class DigestSection:
    """What a feature tells an adviser about each advisee: `collect` gives {student id: context}."""

    name: str
    collect: Callable[["Tx", list[int], date], dict[int, Any]]


@dataclass(frozen=True)
class Reason:
    """One reason an adviser should look at a student now, with the evidence behind it.

    `level` says how bad it is (1 by default; e.g. the weeks in a row, the age in weeks, how many):
    the triage score grows with it, and a reason whose level rose since an adult followed the
    student up counts as new. `since` is when it began (shown as its age); `evidence` is the
    context its concern's template reads, next to `reason` itself and `student`.
    """

    level: int = 1
    since: date | None = None
    evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Concern:
    """A triage reason a feature adds to the adviser's digest, the students list and the App Home.

    `collect(tx, student_ids, today)` gives {student id: [Reason, ...]} for the students that have
    it (others may be left out); `template` is the full name of the line an adviser reads
    (e.g. "reflection/concern_missed"), rendered in the adviser's language with the keys of the
    reason's `evidence`, `evidence` itself, `reason` (level, since, days) and `student` (the full
    name); `weight` is its points in the documented triage score (see
    `core.features.advisers.triage`): a student's score is the sum over their reasons of
    `weight × min(level, 3)`, highest first. Safety alerts weigh 100, help requests 40, a bot
    blocked 30, silence 25, goals stalled 20, a missed reflection 15, low confidence 10 — place a
    new concern among these.
    """

    kind: str
    template: str
    collect: Callable[["Tx", list[int], date], dict[int, list[Reason]]]
    weight: int


@dataclass(frozen=True)
class Highlight:
    """Good news a feature adds to the digest: `collect(tx, student_ids, today)` gives
    {student id: [evidence dict, ...]} for the last seven days, each rendered with `template`
    (a full name such as "genius/highlight_milestone") like a concern's line."""

    kind: str
    template: str
    collect: Callable[["Tx", list[int], date], dict[int, list[dict]]]


@dataclass(frozen=True)
class Form:
    """A form a channel may show (Slack's modal): its current values, its checks, and how it is saved.

    `errors` maps field → error template and runs before the form closes; `save` runs inside the
    engine's pipeline, like any message, so a form gets the safety check and the stopped check.
    Only people of `roles` are shown the form or may save it.
    """

    name: str
    values: Callable[["Tx", int], dict]
    errors: Callable[[dict], dict[str, str]]
    save: Callable[["Engine", Turn, dict], None]
    roles: frozenset[str] = STUDENTS


@dataclass(frozen=True)
class Feature:
    """Everything one feature brings; see the module docstring."""

    name: str
    flows: tuple[Flow, ...] = ()
    commands: tuple[Command, ...] = ()
    triggers: tuple[Trigger, ...] = ()
    settings: tuple[Key, ...] = ()
    digest: tuple[DigestSection, ...] = ()
    concerns: tuple[Concern, ...] = ()  # triage reasons for the adviser's digest
    highlights: tuple[Highlight, ...] = ()  # good news for the adviser's digest
    forms: tuple[Form, ...] = ()
    person_tables: tuple[str, ...] = ()  # tables whose person_id rows are this feature's data about a person
    prompts: Path | None = PROMPTS_DIR  # holds <locale>/<name>/; None for a feature without sentences


@dataclass
class Registry:
    """The installed features, and every table the engine and the tools read from them."""

    features: tuple[Feature, ...]
    settings_keys: tuple[Key, ...] = ()  # keys that belong to no feature (the scheduler's)
    flows: dict[str, Flow] = field(init=False)
    commands: dict[str, Command] = field(init=False)
    triggers: tuple[Trigger, ...] = field(init=False)
    forms: dict[str, Form] = field(init=False)
    settings: SettingsCatalog = field(init=False)

    def __post_init__(self) -> None:
        from core.engine.basics import BASICS  # the commands every person has (listed after the features')
        from core.engine.safety import SAFETY  # alerts an adult answers, whatever else is installed

        self.features = (*(f for f in self.features if f not in (BASICS, SAFETY)), SAFETY, BASICS)
        self.flows = _unique((flow.name, flow) for f in self.features for flow in f.flows)
        self.commands = _unique((command.name, command) for f in self.features for command in f.commands)
        self.forms = _unique((form.name, form) for f in self.features for form in f.forms)
        self.triggers = tuple(sorted((t for f in self.features for t in f.triggers), key=cap_rank))
        _unique((t.kind, t) for t in self.triggers)
        _unique((c.kind, c) for f in self.features for c in (*f.concerns, *f.highlights))
        self.settings = SettingsCatalog([*self.settings_keys, *(key for f in self.features for key in f.settings)])
        for command in self.commands.values():
            if command.flow and command.flow not in self.flows:
                raise ValueError(f"command /{command.name} opens unknown flow {command.flow}")
        for trigger in self.triggers:
            if trigger.flow and trigger.flow not in self.flows:
                raise ValueError(f"trigger {trigger.kind} opens unknown flow {trigger.flow}")
            if trigger.command and trigger.command not in self.commands:
                raise ValueError(f"trigger {trigger.kind} runs unknown command /{trigger.command}")
            for name, kind in ((trigger.day, Weekday), (trigger.at, Clock)):
                if name is not None and not isinstance(self.settings.key(name).kind, kind):
                    raise ValueError(f"trigger {trigger.kind}: setting {name} is not a {kind.__name__.lower()}")

    def extended(self, *features: Feature) -> "Registry":
        """This registry with more features (a school's own, or a test's toy feature)."""
        return Registry((*self.features, *features), self.settings_keys)

    @cached_property
    def catalog(self) -> Catalog:
        """The prompts of the engine and of every feature, wherever each feature keeps them (loaded once)."""
        return Catalog([*engine_folders(), *(PromptFolder(f.name, f.prompts) for f in self.features if f.prompts)])

    def commands_for(self, role: str | None) -> list[Command]:
        return [command for command in self.commands.values() if (role or Role.student) in command.roles]

    def listed(self, role: str | None) -> list[str]:
        """The command names the help and Telegram's menu show to `role`, in registration order."""
        return [command.name for command in self.commands_for(role) if command.listed]

    def menu(self, role: str | None) -> tuple[Button, ...]:
        """The menu's buttons for `role`, in the order the features asked for."""
        placed = sorted((c for c in self.commands_for(role) if c.menu is not None), key=lambda c: c.menu)
        return tuple(Button(f"menu.{command.name}", f"/{command.name}") for command in placed)

    def home(self, role: str | None) -> Command | None:
        return next((command for command in self.commands_for(role) if command.home), None)

    @cached_property
    def when_stopped_flows(self) -> frozenset[str]:
        """Flows a stopped person may still answer: those their allowed commands open (/delete)."""
        return frozenset(c.flow for c in self.commands.values() if c.when_stopped and c.flow)

    def flow_command(self, flow: str) -> str | None:
        """The command that opens `flow`, if any: what a queued flow's button sends."""
        return next((f"/{c.name}" for c in self.commands.values() if c.flow == flow), None)

    def digest_sections(self) -> list[DigestSection]:
        return [section for f in self.features for section in f.digest]

    def concerns(self) -> list[Concern]:
        return [concern for f in self.features for concern in f.concerns]

    def highlights(self) -> list[Highlight]:
        return [highlight for f in self.features for highlight in f.highlights]

    def person_tables(self) -> list[str]:
        return [table for f in self.features for table in f.person_tables]


def _unique(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """A dict from (name, item) pairs; a name given twice is a configuration error."""
    found: dict[str, Any] = {}
    for name, item in pairs:
        if name in found:
            raise ValueError(f"{name} is registered by two features")
        found[name] = item
    return found
