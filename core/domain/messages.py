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
    locale: str | None = None  # the language the platform reports for the person ("es-MX"), a first guess


@dataclass(frozen=True, slots=True)
class FormData:
    """A form a person submitted: which one, and field → what they typed."""

    name: str
    values: dict


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file in the file store (core/domain/files.py): its key there, and what it is."""

    key: str
    name: str
    mime: str
    size: int

    def as_json(self) -> dict:
        return {"key": self.key, "name": self.name, "mime": self.mime, "size": self.size}

    @classmethod
    def from_json(cls, data: dict) -> "FileRef":
        return cls(data["key"], data["name"], data["mime"], int(data["size"]))


@dataclass(frozen=True, slots=True)
class Attachment:
    """Evidence a person sent: a link, or a photo or file with its caption.

    `file` is the copy the adapter downloaded into the file store before handing the event over;
    it is None for a link, or when the download failed (the platform's `ref` is all there is).
    """

    kind: str  # link, photo, file
    ref: str  # URL or the platform's file id
    caption: str | None = None
    file: FileRef | None = None


@dataclass(frozen=True, slots=True)
class Button:
    """A closed choice: `label` is a key in `prompts/<locale>/labels.toml`, `payload` comes back."""

    label: str
    payload: str
    context: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FilePart:
    """An image or a document sent with a message: a stored file, and the template of its own caption.

    With no caption template the file has no caption of its own: the message's text goes with it.
    """

    file: FileRef
    caption: str | None = None  # a template, rendered with the message's context


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message to send: a template, its variables, the buttons under it, and an image or a document."""

    template: str
    context: dict = field(default_factory=dict)
    buttons: tuple[Button, ...] = ()
    image: FilePart | None = None
    document: FilePart | None = None

    def parts(self) -> dict:
        """The image and document parts as the outbox stores them (JSON), or {} when there are none."""
        return {kind: {"file": part.file.as_json(), "caption": part.caption}
                for kind, part in (("image", self.image), ("document", self.document)) if part is not None}


@dataclass(frozen=True, slots=True)
class RenderedFile:
    """A file part in the student's language: the stored file, its caption, and what to say instead.

    `fallback` is the sentence a channel sends when it cannot show the file (the file is gone
    from the store, the platform refuses it): its name and caption.
    """

    file: FileRef
    caption: str | None = None
    fallback: str = ""


@dataclass(frozen=True, slots=True)
class Rendered:
    """An outbound message in the student's language, ready for any adapter to display.

    A channel sends the files first (image, then document), then the text with the buttons.
    """

    text: str
    buttons: tuple[tuple[str, str], ...] = ()  # (label, payload)
    image: RenderedFile | None = None
    document: RenderedFile | None = None

    @property
    def files(self) -> tuple[tuple[str, RenderedFile], ...]:
        """("image" | "document", the file), in the order they are sent."""
        return tuple((kind, part) for kind, part in (("image", self.image), ("document", self.document))
                     if part is not None)
