"""The flow stack: what happens to an open flow when something else comes up, one rule per event.

| event                                                          | effect                                                   |
|----------------------------------------------------------------|----------------------------------------------------------|
| a flow started inside another (command, menu tap)              | pushed; the one below waits with its answers             |
| the top flow finishes                                          | the one below resumes and asks its question again        |
| `/cancel`                                                      | the top flow is set aside; nothing below resumes by itself (the flows below are set aside after it) |
| `/stop`, or a crisis message                                   | every flow is set aside; nothing is asked about them     |
| `/resume`                                                      | lists what was set aside, newest first; the student picks |
| a nudge or another person's action while a flow is open        | queued, and offered with a button once the student is idle |

Set-aside flows keep their answers until they are resumed, replaced by a new run of the same
flow, or a week old. A flow waiting for another person's action (`WaitFor`) leaves the stack for
`waiting` until the action comes. The open flow is the conversation row's flow, state and answers;
the rest lives in its `stack` column as {"below", "aside", "queued", "waiting"}, newest last.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from core.domain.store import Sender
from core.engine.flow import plain_answers

KEPT_FOR = timedelta(weeks=1)


def _part(sender: Sender, name: str) -> list:
    if sender.stack is None:
        sender.stack = {}
    return sender.stack.setdefault(name, [])


def _top(sender: Sender) -> dict:
    return {"flow": sender.flow, "state": sender.state, "answers": plain_answers(sender.answers)}


def _open(sender: Sender, frame: dict | None) -> None:
    """Make `frame` the open flow (None: no flow open)."""
    frame = frame or {}
    sender.flow, sender.state, sender.answers = frame.get("flow"), frame.get("state"), frame.get("answers") or {}


def below(sender: Sender) -> list[dict]:
    return _part(sender, "below")


def aside(sender: Sender) -> list[dict]:
    """Flows set aside, oldest first."""
    return _part(sender, "aside")


def queued(sender: Sender) -> list[str]:
    """Flows offered while the student was busy, oldest first."""
    return _part(sender, "queued")


def waiting(sender: Sender) -> list[dict]:
    """Flows waiting for another person's action; `ready` once it came."""
    return _part(sender, "waiting")


def wait(sender: Sender) -> None:
    """The open flow waits for someone else: it leaves the stack, and the flow below (if any) opens."""
    waiting(sender)[:] = [frame for frame in waiting(sender) if frame["flow"] != sender.flow]
    waiting(sender).append(_top(sender))
    _open(sender, None)


def take_waiting(sender: Sender, flow: str, ready: bool | None = None) -> dict | None:
    """Remove and return the frame of `flow` waiting for an action (only a ready one, with ready=True)."""
    for frame in waiting(sender):
        if frame["flow"] == flow and (ready is None or bool(frame.get("ready")) == ready):
            waiting(sender).remove(frame)
            return frame
    return None


def open_frame(sender: Sender, frame: dict) -> None:
    """Make a frame taken from `waiting` the open flow (the caller moves it on)."""
    _open(sender, {key: frame[key] for key in ("flow", "state", "answers")})


def push(sender: Sender, flow: str) -> None:
    """Open `flow` on top; the open one (if any) waits below with its answers."""
    if sender.flow:
        below(sender).append(_top(sender))
    forget(sender, flow)
    _open(sender, {"flow": flow})


def pop(sender: Sender) -> bool:
    """The open flow finished: the one below (if any) becomes the open one again."""
    waiting = below(sender)
    _open(sender, waiting.pop() if waiting else None)
    return sender.flow is not None


def unwind_to(sender: Sender, flow: str, now: datetime) -> bool:
    """`flow` was started again while it waits below: the flows above it are set aside, and it is open again."""
    waiting = below(sender)
    names = [frame["flow"] for frame in waiting]
    if flow not in names:
        return False
    depth = len(names) - 1 - names[::-1].index(flow)
    above = [*waiting[depth + 1:], _top(sender)]
    _open(sender, waiting[depth])
    del waiting[depth:]
    for frame in above:
        aside(sender).append({**frame, "at": now.isoformat()})
    return True


def set_aside(sender: Sender, now: datetime) -> bool:
    """Set every open and waiting flow aside, the open one newest; False when nothing was open."""
    if not sender.flow:
        return False
    for frame in [*below(sender), _top(sender)]:
        aside(sender).append({**frame, "at": now.isoformat()})
    below(sender).clear()
    _open(sender, None)
    return True


def take_aside(sender: Sender, index: int) -> bool:
    """Open the set-aside flow at `index` (0 = the newest) with its answers; False when there is none."""
    kept = aside(sender)
    if not 0 <= index < len(kept):
        return False
    frame = kept.pop(len(kept) - 1 - index)
    frame.pop("at", None)
    _open(sender, frame)
    return True


def forget(sender: Sender, flow: str) -> None:
    """A new run of `flow` replaces any set aside or queued one."""
    sender.stack["aside"] = [frame for frame in aside(sender) if frame["flow"] != flow]
    sender.stack["queued"] = [name for name in queued(sender) if name != flow]


def prune(sender: Sender, now: datetime, flows: dict) -> None:
    """Drop what is a week old, and flows or steps an upgrade renamed (they cannot be resumed)."""
    def fresh(frame: dict) -> bool:
        return datetime.fromisoformat(frame["at"]) > now - KEPT_FOR and _resumable(frame, flows)

    if sender.flow and not _resumable({"flow": sender.flow, "state": sender.state}, flows):
        _open(sender, None)
    if not sender.stack or not any(sender.stack.values()):  # the usual case, on every message
        return
    sender.stack["below"] = [frame for frame in below(sender) if _resumable(frame, flows)]
    sender.stack["aside"] = [frame for frame in aside(sender) if fresh(frame)]
    sender.stack["queued"] = [name for name in queued(sender) if name in flows]
    sender.stack["waiting"] = [frame for frame in waiting(sender) if _resumable(frame, flows)]
    if not sender.flow and below(sender):
        pop(sender)


def _resumable(frame: dict, flows: dict) -> bool:
    flow = flows.get(frame.get("flow"))
    return flow is not None and flow.knows(frame.get("state"))
