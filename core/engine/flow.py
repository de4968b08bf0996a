"""Declarative conversations: a flow is a table of steps that reads like the conversation.

    Step("obstacle", ask="goals/ask_obstacle", expect=Text(), save="obstacle", then="plan")

reads: ask the `goals/ask_obstacle` template, accept free text, keep it as the answer
`obstacle` (a field of the flow's answers dataclass), go on to `plan`. `then` may be a function
of the turn for branches; `skip` jumps over a question whose answer is already known; `effect`
writes the domain rows an answer produced (in the engine's transaction). Beside steps, a flow may
hold an `Each` (steps repeated for every item of a list), a `SubFlow` (another flow that returns
here) and a `WaitFor` (another person's action, such as an adviser's approval).
`core/engine/diagram.py` draws any flow from its table.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field, fields as dataclass_fields, is_dataclass
from datetime import date, datetime
from functools import lru_cache
from types import NoneType
from typing import TYPE_CHECKING, Any, Callable
from zoneinfo import ZoneInfo

from core.domain import dates
from core.domain.messages import Button, Inbound, Outbound
from core.domain.models import DEFAULT_LOCALE, DEFAULT_TIMEZONE
from core.engine import answers as understand, places
from core.render.templates import LOCALES, format_day

if TYPE_CHECKING:
    from core.domain.store import Sender, Tx
    from core.render.templates import Catalog

END = "end"
NEXT = "next"  # inside an Each: on to the next item (or past the loop after the last)
Clock = Callable[[], datetime]


class Invalid(Exception):
    """An answer the step cannot accept; `template` explains why, kindly."""

    def __init__(self, template: str, **context: Any):
        super().__init__(template)
        self.template = template
        self.context = context


@dataclass(slots=True)  # one per event: slots make it quicker to build
class Turn:
    """Everything a step sees while handling one message: the student, their answers, the database."""

    tx: "Tx"
    sender: "Sender"
    catalog: "Catalog"
    now: datetime
    replies: list[Outbound] = field(default_factory=list)
    platform: str = ""  # where the event came from (for the audit log)
    flows: dict[str, "Flow"] = field(default_factory=dict)
    # Messages to other people (an alert to adults), queued after this person's own replies:
    # (person id, platform, chat id, locale, message).
    others: list[tuple[int, str, str, str, Outbound]] = field(default_factory=list)
    # The engine handling the event, for a step whose answer acts on another person's flow
    # (`Engine.act_on`: an adviser's comment on a pitch resumes the student's waiting flow).
    engine: Any = None
    platform_locale: str | None = None  # the language the chat app reports (a first guess, before the student chooses)

    @property
    def answers(self) -> Any:
        """The open flow's answers, as that flow's dataclass."""
        flow = self.flows.get(self.sender.flow)
        if flow is not None and not isinstance(self.sender.answers, flow.answers):
            self.sender.answers = flow.load(self.sender.answers)
        return self.sender.answers

    @property
    def item(self) -> Any:
        """The current item of the loop (`Each`) the open step belongs to."""
        loop = self.flows[self.sender.flow].loop_of[self.sender.state]
        position = self.answers.loops[loop.name]
        return position["items"][position["index"]]

    @property
    def person_id(self) -> int:
        return self.sender.person_id

    @property
    def locale(self) -> str:
        return self.sender.locale or self.platform_locale or self.sender.school_locale or DEFAULT_LOCALE

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.sender.timezone or self.sender.school_timezone or DEFAULT_TIMEZONE)

    @property
    def today(self) -> date:
        """Today in the student's own time zone."""
        return self.now.astimezone(self.zone).date()

    @property
    def week_start(self) -> date:
        """The Monday of the student's current week."""
        return dates.week_start(self.today)

    def say(self, template: str, buttons: tuple[Button, ...] = (), **context: Any) -> None:
        self.replies.append(Outbound(template, context, buttons))


def plain(text: str) -> str:
    """Text folded for matching: no case, no accents ("Sí" == "si"), no surrounding space."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


@lru_cache(maxsize=256)  # a platform reports a handful of tags, one per message
def supported_locale(tag: str | None) -> str | None:
    """One of the bot's languages from a platform's tag ("es-MX", "es_ES.UTF-8", "en"), or None."""
    language = re.split(r"[-_.@]", (tag or "").strip().lower())[0]
    return language if language in LOCALES else None


# -- what a step accepts ----------------------------------------------------------------------------
#
# Every typed answer at a step with buttons passes the one interpreter (core/engine/answers.py);
# a step only declares what it expects.


class Expect:
    """How a step reads an answer: which buttons to show and how to parse what came back."""

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return ()

    def parse(self, turn: Turn, inbound: Inbound) -> Any:
        raise NotImplementedError

    def tapped(self, turn: Turn, inbound: Inbound) -> str | None:
        """The payload of the button tapped, or of the button whose label or a synonym of it was typed
        as the whole answer ("Keep America/New_York", "keep")."""
        if inbound.payload is not None:
            return inbound.payload
        typed = dates.fold(inbound.text or "")
        if not typed:
            return None
        buttons = self.buttons(turn)
        for button in buttons:
            if dates.fold(turn.catalog.label(button.label, turn.locale, button.context)) == typed:
                return button.payload
        words = {button.payload: understand.option_words(turn.catalog, button.label, button.payload)
                 for button in buttons}
        return understand.choose(turn.catalog, inbound.text or "", words, loose=False)


def not_understood(options: list[str]) -> Invalid:
    """The refusal of a typed answer that names no option, or two: the hint lists the options as shown."""
    return Invalid("common/not_understood", options=options)


@dataclass(frozen=True)
class Text(Expect):
    """Free text: the student's own words."""

    max_length: int = 500

    def parse(self, turn: Turn, inbound: Inbound) -> str:
        text = (inbound.text or "").strip()
        if not text:
            raise Invalid("errors/need_text")
        if len(text) > self.max_length:
            raise Invalid("errors/too_long", limit=self.max_length)
        return text


@dataclass(frozen=True)
class Choice(Expect):
    """A closed choice shown as buttons; typing a label, a synonym or its number works too.

    `labels` maps each option to its label key (default: the option itself). With `or_text`,
    any other text is accepted as free text instead of refused (and only a whole typed answer
    is read as an option: the student's own words stay theirs).
    """

    options: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    or_text: Expect | None = None  # free text (`Text`), or another expectation with its own buttons (`Number`)

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        own = tuple(Button(self.labels.get(option, option), option) for option in self.options)
        return (self.or_text.buttons(turn) if self.or_text is not None else ()) + own  # a scale keeps its numbers

    def parse(self, turn: Turn, inbound: Inbound) -> Any:
        otherwise = self.or_text.buttons(turn) if self.or_text is not None else ()
        if inbound.payload is not None:
            if inbound.payload in self.options:
                return inbound.payload
            if otherwise:
                return self.or_text.parse(turn, inbound)
            raise Invalid("errors/pick_one")  # a button of another question
        typed = plain(inbound.text or "")
        if (typed.isdigit() and 1 <= int(typed) <= len(self.options) and not self.options[0].isdigit()
                and not otherwise):
            return self.options[int(typed) - 1]
        words = understand.choice_words(turn.catalog, self.options, self.labels)
        found = understand.choose(turn.catalog, inbound.text or "", words, loose=self.or_text is None)
        if found is not None:
            return found
        if self.or_text is not None and (inbound.text or otherwise):
            return self.or_text.parse(turn, inbound)
        raise not_understood(understand.hint_labels(turn.catalog, (self.labels.get(option, option)
                                                                   for option in self.options), turn.locale))


@dataclass(frozen=True)
class Pick(Expect):
    """A choice among buttons built for this turn (this week's goals, each with its actions);
    typed answers are read by the same interpreter, against the buttons' labels and synonyms."""

    options: Callable[[Turn], tuple[Button, ...]]
    suggests_first: bool = False  # the first button is a suggestion: a typed "yes" / "sí" takes it

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return self.options(turn)

    def parse(self, turn: Turn, inbound: Inbound) -> str:
        buttons = self.options(turn)
        if inbound.payload is not None:
            if inbound.payload in {button.payload for button in buttons}:
                return inbound.payload
            raise Invalid("errors/pick_one")
        tapped = self.tapped(turn, inbound)
        if tapped is not None:
            return tapped
        typed = plain(inbound.text or "")
        if typed.isdigit() and 1 <= int(typed) <= len(buttons):
            return buttons[int(typed) - 1].payload
        words = {button.payload: (dates.fold(turn.catalog.label(button.label, turn.locale, button.context)),
                                  *understand.option_words(turn.catalog, button.label, button.payload))
                 for button in buttons}
        found = understand.choose(turn.catalog, inbound.text or "", words)
        if found is None and self.suggests_first and understand.choose(
                turn.catalog, inbound.text or "", understand.choice_words(turn.catalog, ("yes",), {})) == "yes":
            return buttons[0].payload
        if found is None:
            raise not_understood([turn.catalog.label(b.label, turn.locale, b.context) for b in buttons])
        return found


def day_button(turn: Turn, day: date) -> Button:
    """A button for one date, labelled as people say it in the student's language."""
    return Button("pick.day", day.isoformat(), {"day": format_day(day, turn.locale)})


@dataclass(frozen=True)
class Day(Expect):
    """A day, in the student's words: "Thursday", "by Friday", "tmrw", "el próximo viernes", "Dec 3".

    "next Friday" said early in the week could be either Friday: both are offered as buttons.
    A button's payload is a day's words ("next friday", read as next week's) or an ISO date.
    """

    quick: tuple[str, ...] = ("wednesday", "friday", "sunday")

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return tuple(Button("day." + name.replace(" ", "_"), name) for name in self.quick)

    def parse(self, turn: Turn, inbound: Inbound) -> date:
        tapped = self.tapped(turn, inbound)
        if tapped is not None and re.fullmatch(r"\d{4}-\d{2}-\d{2}", tapped):
            found = [date.fromisoformat(tapped)]
        else:
            found = dates.read_day(tapped or inbound.text or "", turn.today, turn.locale, strict_next=tapped is not None)
        if len(found) > 1:
            raise Invalid("common/which_day", buttons=tuple(day_button(turn, day) for day in found))
        if not found:
            raise Invalid("errors/need_day")
        if found[0] < turn.today:
            raise Invalid("errors/day_in_past")
        return found[0]


@dataclass(frozen=True)
class TimeOfDay(Expect):
    """A time of day such as 7:30, 4pm, 16:00, "5 de la tarde", "after school"; kept as "HH:MM".

    A bare hour is read as the school day has it ("5" is 17:00); one that could be either (7) is
    asked about with both times as buttons.
    """

    quick: tuple[str, ...] = ("07:30", "15:30", "19:00")

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return tuple(Button("time", value, {"time": value}) for value in self.quick)

    def parse(self, turn: Turn, inbound: Inbound) -> str:
        found = dates.read_time(self.tapped(turn, inbound) or inbound.text or "", turn.locale)
        if len(found) > 1:
            times = [moment.strftime("%H:%M") for moment in found]
            raise Invalid("common/which_time", buttons=tuple(Button("time", value, {"time": value}) for value in times))
        if not found:
            raise Invalid("errors/need_time")
        return found[0].strftime("%H:%M")


@dataclass(frozen=True)
class TimeZone(Expect):
    """A time zone from how a student names their place: a city ("im in chicago", "ciudad de méxico"),
    a US state, a country, an abbreviation (PST, CET), a region word ("central", "hora del centro"),
    or an IANA name; a button keeps the school's."""

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        school = turn.sender.school_timezone or DEFAULT_TIMEZONE
        return (Button("timezone.keep", "keep", {"zone": school}),)

    def parse(self, turn: Turn, inbound: Inbound) -> str:
        if self.tapped(turn, inbound) == "keep":
            return turn.sender.school_timezone or DEFAULT_TIMEZONE
        if inbound.payload and inbound.payload in places.ZONE_NAMES:
            return inbound.payload  # a button of the "which one?" question
        found = places.zones_for(inbound.text or "", turn.catalog)
        if len(found) > 1:
            raise Invalid("common/which_zone", buttons=tuple(Button("zone", zone, {"zone": places.zone_label(zone)})
                                                              for zone in found[:4]))
        if not found:
            raise Invalid("errors/need_timezone")
        return found[0]


@dataclass(frozen=True)
class Number(Expect):
    """A whole number in a range, as buttons; typed as "4", "four", "cuatro", "4/5", or on a 1–5
    scale as a word ("high", "kinda")."""

    low: int
    high: int

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return tuple(Button("number", str(n), {"n": n}) for n in range(self.low, self.high + 1))

    def parse(self, turn: Turn, inbound: Inbound) -> int:
        raw = (inbound.payload or "").strip()
        if raw.isdigit() and self.low <= int(raw) <= self.high:
            return int(raw)
        found = understand.number(turn.catalog, inbound.text or "", turn.locale, self.low, self.high)
        if found is None or inbound.payload:
            raise Invalid("errors/need_number", low=self.low, high=self.high)
        return found


# -- steps and flows --------------------------------------------------------------------------------

Next = str | Callable[[Turn], str]


@dataclass
class Answers:
    """What a flow has collected so far; each flow declares its own fields by subclassing this.

    `loops` is the engine's: the items and position of each `Each` the flow is in.
    """

    loops: dict[str, dict] = field(default_factory=dict)


def plain_answers(answers: Any) -> dict:
    """Answers as JSON-ready data (the conversation row keeps them between messages)."""
    return _plain(answers) if isinstance(answers, Answers) or is_dataclass(answers) else dict(answers or {})


_LEAVES = (str, int, float, NoneType)


def _plain(value: Any) -> Any:
    """`dataclasses.asdict` without its deep copy of every leaf (strings and dates are immutable):
    this runs on every message."""
    if isinstance(value, _LEAVES):
        return value
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()} if value else {}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if is_dataclass(value) and not isinstance(value, type):
        return {name: _plain(getattr(value, name)) for name in _field_names(type(value))}
    return value


@lru_cache(maxsize=None)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclass_fields(cls))


@dataclass(frozen=True)
class Step:
    """One question: the template that asks it, what it accepts, where the answer goes, what follows.

    `then` is a step's name, END, NEXT (inside an `Each`: the next item), or a function of the
    turn that returns one of `branches` — a tuple of names, or a dict of name → what leads there,
    drawn on the diagram's arrows.
    """

    name: str
    ask: str
    expect: Expect
    save: str | None = None
    then: Next = END
    branches: tuple[str, ...] | dict[str, str] = ()
    skip: Callable[[Turn], bool] | None = None
    context: Callable[[Turn], dict] | None = None
    effect: Callable[[Turn, Any], None] | None = None

    def next_state(self, turn: Turn) -> str:
        if not callable(self.then):
            return self.then
        state = self.then(turn)
        if state not in self.branches:
            raise ValueError(f"step {self.name} went to {state}, not one of its branches {tuple(self.branches)}")
        return state

    @property
    def targets(self) -> tuple[str, ...]:
        return tuple(self.branches) if callable(self.then) else (self.then,)

    def prompt(self, turn: Turn) -> Outbound:
        """The question, with its buttons, in the student's language."""
        context = self.context(turn) if self.context else {}
        return Outbound(self.ask, context, self.expect.buttons(turn))


@dataclass(frozen=True)
class Each:
    """Steps asked once for each item of a list: each subject, each goal, each milestone.

    `over` loads the items when the flow gets here (none: straight on to `then`); the steps see the
    current item as `turn.item`; a step that goes to NEXT moves to the next item, and after the
    last one the flow goes on to `then`.
    """

    name: str
    over: Callable[[Turn], list]
    steps: tuple[Step, ...]
    then: str = END

    @property
    def targets(self) -> tuple[str, ...]:
        return self.steps[0].name, self.then


@dataclass(frozen=True)
class SubFlow:
    """Another flow run in the middle of this one: when it finishes, its answers are kept as `save`
    and this flow goes on to `then` (no "where were we": it was part of the plan)."""

    name: str
    flow: str
    save: str | None = None
    then: str = END

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.then,)


@dataclass(frozen=True)
class WaitFor:
    """The flow waits for another person's action (an adviser approving a pitch).

    The person hears `say` and is free meanwhile; the action's value is kept as `save` and the
    flow goes on at `then` — at once when the person is idle, else offered with a button when
    they are (the stack's rule for another person's action).
    """

    name: str
    say: str | None = None
    save: str | None = None
    then: str = END

    @property
    def targets(self) -> tuple[str, ...]:
        return (self.then,)


Node = Step | Each | SubFlow | WaitFor


@dataclass(frozen=True)
class Flow:
    """A conversation: its steps in order, what it loads when it starts and writes when it ends.

    `answers` is the dataclass (a subclass of `Answers`) that holds what the flow collects; a
    step's `save` names one of its fields.
    """

    name: str
    steps: tuple[Node, ...]
    answers: type[Answers] = Answers
    begin: Callable[[Turn], str] | None = None  # loads what the flow needs; returns the first state
    starts: tuple[str, ...] = ()  # where `begin` may lead
    finish: Callable[[Turn], None] | None = None
    evidence_for: Callable[[Turn], dict | None] | None = None  # {"id", "text"} a photo sent now is evidence of
    by_name: dict[str, Step] = field(init=False, repr=False, compare=False)
    nodes: dict[str, Node] = field(init=False, repr=False, compare=False)  # Each, SubFlow and WaitFor by name
    loop_of: dict[str, Each] = field(init=False, repr=False, compare=False)  # a step inside an Each → the Each

    def __post_init__(self) -> None:
        by_name: dict[str, Step] = {}
        nodes: dict[str, Node] = {}
        loop_of: dict[str, Each] = {}
        for node in self.steps:
            if isinstance(node, Step):
                by_name[node.name] = node
                continue
            nodes[node.name] = node
            for inner in getattr(node, "steps", ()):
                by_name[inner.name] = inner
                loop_of[inner.name] = node
        object.__setattr__(self, "by_name", by_name)
        object.__setattr__(self, "nodes", nodes)
        object.__setattr__(self, "loop_of", loop_of)
        fields = {f.name for f in dataclass_fields(self.answers)}
        known = set(by_name) | set(nodes)
        for step in by_name.values():
            if callable(step.then) and not step.branches:
                raise ValueError(f"flow {self.name}: step {step.name} branches but names no branches")
            for target in step.targets:
                if target == NEXT and step.name not in loop_of:
                    raise ValueError(f"flow {self.name}: step {step.name} goes to NEXT outside an Each")
                if target not in (END, NEXT) and target not in known:
                    raise ValueError(f"flow {self.name}: step {step.name} goes to unknown step {target}")
        for node in (*by_name.values(), *nodes.values()):
            if getattr(node, "save", None) and node.save not in fields:
                raise ValueError(f"flow {self.name}: {node.name} saves {node.save}, not a field of "
                                 f"{self.answers.__name__}")
            for target in getattr(node, "targets", ()):
                if target not in (END, NEXT) and target not in known:
                    raise ValueError(f"flow {self.name}: {node.name} goes to unknown step {target}")

    @property
    def first(self) -> str:
        return self.steps[0].name

    def start(self, turn: Turn) -> str:
        """The first state for this turn: `begin` decides when the flow has one."""
        if self.begin is None:
            return self.first
        state = self.begin(turn)
        if state not in self.starts:
            raise ValueError(f"flow {self.name} began at {state}, not one of {self.starts}")
        return state

    def step(self, name: str) -> Step:
        return self.by_name[name]

    def knows(self, state: str | None) -> bool:
        """Can a conversation wait at `state`? (An upgrade may have renamed it.)"""
        return state in self.by_name or state in self.nodes

    def load(self, answers: dict | Answers) -> Answers:
        """Stored answers as this flow's dataclass; fields an upgrade removed are dropped."""
        if isinstance(answers, self.answers):
            return answers
        names = _field_names(self.answers)
        return self.answers(**{key: value for key, value in (answers or {}).items() if key in names})

    def enter(self, turn: Turn, loop: Each) -> str:
        """Start a loop: load its items; the first item's first step, or past the loop when there are none."""
        items = list(loop.over(turn))
        if not items:
            return loop.then
        turn.answers.loops[loop.name] = {"items": items, "index": 0}
        return loop.steps[0].name

    def follow(self, turn: Turn, step: Step, target: str) -> str:
        """Where `step` leads: NEXT becomes the next item's first step, or the step after the loop."""
        if target != NEXT:
            return target
        loop = self.loop_of[step.name]
        position = turn.answers.loops[loop.name]
        position["index"] += 1
        if position["index"] < len(position["items"]):
            return loop.steps[0].name
        del turn.answers.loops[loop.name]
        return loop.then
