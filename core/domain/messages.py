"""Platform-neutral messages: what adapters hand to the engine, and what it hands back."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Inbound:
    """One event from a chat platform, translated by an adapter.

    `event_id` is the platform's own id (Telegram update_id, Slack event_id): the engine handles
    each (platform, event_id) once. Exactly one of `text` and `payload` is usually set: `payload`
    is the value of a tapped button.
    """

    platform: str
    event_id: str
    sender: str  # the platform's user id
    chat_id: str  # where replies go
    text: str | None = None
    payload: str | None = None
    attachment: "Attachment | None" = None
    email: str | None = None  # Slack knows the sender's e-mail: linking by roster e-mail
    form: "FormData | None" = None  # a submitted form (Slack's modal), saved through the same pipeline
    opens: str | None = None  # a trigger (a nudge) asks to open this flow


@dataclass(frozen=True, slots=True)
class FormData:
    """A form a person submitted: which one, and field → what they typed."""

    name: str
    values: dict


@dataclass(frozen=True, slots=True)
class Attachment:
    kind: str  # link, photo, file
    ref: str  # URL or the platform's file id
    caption: str | None = None


@dataclass(frozen=True, slots=True)
class Button:
    """A closed choice: `label` is a key in `prompts/<locale>/labels.toml`, `payload` comes back."""

    label: str
    payload: str
    context: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to send: a template, its variables, and the buttons under it."""

    template: str
    context: dict = field(default_factory=dict)
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True, slots=True)
class Rendered:
    """An outbound message in the student's language, ready for any adapter to display."""

    text: str
    buttons: tuple[tuple[str, str], ...] = ()  # (label, payload)
