"""The commands every person has, whatever features are installed: help, start, stop, cancel,
resume, and `open` (the button that opens a flow queued while the person was busy).

Their sentences are the engine's `commands` prompt group; the registry puts this feature first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.domain import records
from core.domain.messages import Button
from core.domain.models import PersonStatus
from core.engine import stack
from core.engine.flow import Turn
from core.engine.registry import EVERYONE, Command, Feature

if TYPE_CHECKING:
    from core.engine.pipeline import Engine


def show_help(engine: "Engine", turn: Turn, _args: str) -> None:
    """List what this person can say at any time."""
    turn.say("commands/help", commands=engine.registry.listed(turn.sender.role))


def stop(engine: "Engine", turn: Turn, _args: str) -> None:
    """No more messages until the student says /start; every flow is set aside."""
    records.set_person(turn.tx, turn.person_id, status=PersonStatus.stopped)
    turn.sender.status = PersonStatus.stopped
    stack.set_aside(turn.sender, turn.now)
    turn.say("commands/stopped_now")


def start(engine: "Engine", turn: Turn, _args: str) -> None:
    """Come back after /stop, or see where things stand."""
    sender = turn.sender
    if sender.status == PersonStatus.stopped:
        records.set_person(turn.tx, turn.person_id, status=PersonStatus.active)
        sender.status = PersonStatus.active
        if not sender.consented:
            engine.start_flow(turn, "onboarding")
            return
        turn.say("commands/welcome_back")
    if not sender.flow:
        engine.menu(turn)


def cancel(engine: "Engine", turn: Turn, _args: str) -> None:
    """Leave the open flow: it is set aside with its answers, and nothing below resumes by itself."""
    if stack.set_aside(turn.sender, turn.now):
        turn.say("commands/left")
        engine.offer_queued(turn)
    else:
        engine.menu(turn)


def resume(engine: "Engine", turn: Turn, args: str) -> None:
    """With a flow open, ask its question again; otherwise list what was set aside, newest first."""
    sender = turn.sender
    if sender.flow:
        return  # the open question is asked again after any command
    if args.isdigit() and stack.take_aside(sender, int(args)):
        turn.say("commands/resuming")
        engine.ask_again(turn)
        return
    kept = stack.aside(sender)[::-1]
    if not kept:
        engine.menu(turn)
        return
    turn.say("commands/resume_pick", flows=[frame["flow"] for frame in kept],
             buttons=tuple(Button(f"flow.{frame['flow']}", f"/resume {n}") for n, frame in enumerate(kept)))


def open_queued(engine: "Engine", turn: Turn, args: str) -> None:
    """Open a flow that was queued for this person (a nudge, or another person's action, while they were busy)."""
    if args in stack.queued(turn.sender) and not turn.sender.flow:
        engine.open_queued(turn, args)
    elif not turn.sender.flow:
        engine.menu(turn)


BASICS = Feature(
    "commands",
    commands=(
        Command("help", run=show_help, roles=EVERYONE, menu=90),
        Command("cancel", run=cancel, roles=EVERYONE),
        Command("resume", run=resume, roles=EVERYONE),
        Command("stop", run=stop, roles=EVERYONE),
        Command("start", run=start, roles=EVERYONE, listed=False, when_stopped=True),
        Command("open", run=open_queued, roles=EVERYONE, listed=False),
    ),
)
