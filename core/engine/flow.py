"""Declarative conversations: a flow is a table of steps that reads like the conversation.

    Step("obstacle", ask="goals/ask_obstacle", expect=Text(), save="obstacle", then="plan")

reads: ask the `goals/ask_obstacle` template, accept free text, keep it as the answer
`obstacle`, go on to `plan`. `then` may be a function of the turn for branches and loops;
`skip` jumps over a question whose answer is already known; `effect` writes the domain rows an
answer produced (in the engine's transaction). `core/diagram.py` draws any flow from its table.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Callable
from zoneinfo import ZoneInfo, available_timezones

from core.domain import dates
from core.domain.messages import Button, Inbound, Outbound
from core.domain.models import DEFAULT_LOCALE, DEFAULT_TIMEZONE

if TYPE_CHECKING:
    from core.domain.store import Sender, Tx
    from core.render.templates import Catalog

END = "end"
Clock = Callable[[], datetime]


class Invalid(Exception):
    """An answer the step cannot accept; `template` explains why, kindly."""

    def __init__(self, template: str, **context: Any):
        super().__init__(template)
        self.template = template
        self.context = context


@dataclass
class Turn:
    """Everything a step sees while handling one message: the student, their answers, the database."""

    tx: "Tx"
    sender: "Sender"
    catalog: "Catalog"
    now: datetime
    replies: list[Outbound] = field(default_factory=list)
    platform: str = ""  # where the event came from (for the audit log)

    @property
    def answers(self) -> dict:
        return self.sender.answers

    @property
    def person_id(self) -> int:
        return self.sender.person_id

    @property
    def locale(self) -> str:
        return self.sender.locale or self.sender.school_locale or DEFAULT_LOCALE

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


# -- what a step accepts ----------------------------------------------------------------------------


class Expect:
    """How a step reads an answer: which buttons to show and how to parse what came back."""

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return ()

    def parse(self, turn: Turn, inbound: Inbound) -> Any:
        raise NotImplementedError


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
    """A closed choice shown as buttons; typing a label or its number works too.

    `labels` maps each option to its label key (default: the option itself). With
    `or_text`, any other text is accepted as free text instead of refused.
    """

    options: tuple[str, ...]
    labels: dict[str, str] = field(default_factory=dict)
    or_text: Text | None = None

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return tuple(Button(self.labels.get(option, option), option) for option in self.options)

    def parse(self, turn: Turn, inbound: Inbound) -> str:
        if inbound.payload in self.options:
            return inbound.payload
        typed = plain(inbound.text or "")
        if typed.isdigit() and 1 <= int(typed) <= len(self.options) and not self.options[0].isdigit():
            return self.options[int(typed) - 1]
        for option in self.options:
            label = plain(turn.catalog.label(self.labels.get(option, option), turn.locale))
            if typed and typed in (option.casefold(), label):
                return option
        if self.or_text is not None and inbound.text:
            return self.or_text.parse(turn, inbound)
        raise Invalid("errors/pick_one")


@dataclass(frozen=True)
class Day(Expect):
    """A day, in the student's words: "Thursday", "by Friday", "next Tuesday", "Dec 3"."""

    quick: tuple[str, ...] = ("wednesday", "friday", "sunday")

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return tuple(Button("day." + name.replace(" ", "_"), name) for name in self.quick)

    def parse(self, turn: Turn, inbound: Inbound) -> date:
        words = inbound.payload or inbound.text or ""
        found = dates.parse_day(words, turn.today, turn.locale)
        if found is None:
            raise Invalid("errors/need_day")
        if found < turn.today:
            raise Invalid("errors/day_in_past")
        return found


@dataclass(frozen=True)
class TimeOfDay(Expect):
    """A time of day such as 7:30, 4pm or 16:00; kept as "HH:MM"."""

    quick: tuple[str, ...] = ("07:30", "15:30", "19:00")

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return tuple(Button("time", value, {"time": value}) for value in self.quick)

    def parse(self, turn: Turn, inbound: Inbound) -> str:
        found = dates.parse_time(inbound.payload or inbound.text or "")
        if found is None:
            raise Invalid("errors/need_time")
        return found.strftime("%H:%M")


TIMEZONES = {name.casefold(): name for name in available_timezones()}
TIMEZONE_CITIES = {name.rsplit("/", 1)[-1].replace("_", " ").casefold(): name for name in available_timezones()
                   if "/" in name and not name.startswith("Etc/")}


@dataclass(frozen=True)
class TimeZone(Expect):
    """An IANA time zone, or a city: "America/Chicago", "Chicago", "madrid"; a button keeps the school's."""

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        school = turn.sender.school_timezone or DEFAULT_TIMEZONE
        return (Button("timezone.keep", "keep", {"zone": school}),)

    def parse(self, turn: Turn, inbound: Inbound) -> str:
        if inbound.payload == "keep":
            return turn.sender.school_timezone or DEFAULT_TIMEZONE
        typed = re.sub(r"\s+", " ", plain(inbound.text or ""))
        zone = TIMEZONES.get(typed.replace(" ", "_")) or TIMEZONE_CITIES.get(typed)
        if zone is None:
            raise Invalid("errors/need_timezone")
        return zone


@dataclass(frozen=True)
class Number(Expect):
    """A whole number in a range, as buttons."""

    low: int
    high: int

    def buttons(self, turn: Turn) -> tuple[Button, ...]:
        return tuple(Button("number", str(n), {"n": n}) for n in range(self.low, self.high + 1))

    def parse(self, turn: Turn, inbound: Inbound) -> int:
        raw = (inbound.payload or inbound.text or "").strip()
        if raw.isdigit() and self.low <= int(raw) <= self.high:
            return int(raw)
        raise Invalid("errors/need_number", low=self.low, high=self.high)


# -- steps and flows --------------------------------------------------------------------------------

Next = str | Callable[[Turn], str]


@dataclass(frozen=True)
class Step:
    """One question: the template that asks it, what it accepts, where the answer goes, what follows."""

    name: str
    ask: str
    expect: Expect
    save: str | None = None
    then: Next = END
    branches: tuple[str, ...] = ()  # where a `then` function may lead: checked, and drawn in diagrams
    skip: Callable[[Turn], bool] | None = None
    context: Callable[[Turn], dict] | None = None
    effect: Callable[[Turn, Any], None] | None = None

    def next_state(self, turn: Turn) -> str:
        if not callable(self.then):
            return self.then
        state = self.then(turn)
        if state not in self.branches:
            raise ValueError(f"step {self.name} went to {state}, not one of its branches {self.branches}")
        return state

    @property
    def targets(self) -> tuple[str, ...]:
        return self.branches if callable(self.then) else (self.then,)

    def prompt(self, turn: Turn) -> Outbound:
        """The question, with its buttons, in the student's language."""
        context = self.context(turn) if self.context else {}
        return Outbound(self.ask, context, self.expect.buttons(turn))


@dataclass(frozen=True)
class Flow:
    """A conversation: its steps in order, what it loads when it starts and writes when it ends."""

    name: str
    steps: tuple[Step, ...]
    begin: Callable[[Turn], str] | None = None  # loads what the flow needs; returns the first state
    starts: tuple[str, ...] = ()  # where `begin` may lead
    finish: Callable[[Turn], None] | None = None
    evidence_for: Callable[[Turn], dict | None] | None = None  # {"id", "text"} a photo sent now is evidence of
    by_name: dict[str, Step] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_name", {step.name: step for step in self.steps})
        for step in self.steps:
            if callable(step.then) and not step.branches:
                raise ValueError(f"flow {self.name}: step {step.name} branches but names no branches")
            for target in step.targets:
                if target != END and target not in self.by_name:
                    raise ValueError(f"flow {self.name}: step {step.name} goes to unknown step {target}")

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

