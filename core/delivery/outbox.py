"""The outbox: messages the engine queued, claimed by a delivery worker and sent exactly once."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import datetime

from core.domain.messages import Button, FilePart, FileRef, Outbound, Rendered, RenderedFile
from core.domain.store import Store
from core.render.templates import Catalog


@dataclass(frozen=True)
class Pending:
    """A claimed outbox row, rendered for its adapter."""

    id: int
    person_id: int | None
    platform: str
    chat_id: str
    message: Rendered


def pending(store: Store, catalog: Catalog, platform: str, now: datetime, chat_id: str | None = None,
            limit: int = 100) -> list[Pending]:
    """Rows waiting to go out on `platform` (replies before nudges, oldest first), rendered."""
    with store.transaction() as tx:
        where = "platform = ? AND status = 'pending' AND (not_before IS NULL OR not_before <= ?)"
        params: list = [platform, tx.ts(now)]
        if chat_id is not None:
            where += " AND chat_id = ?"
            params.append(chat_id)
        rows = tx.all(f"SELECT id, person_id, platform, chat_id, template, locale, context, buttons, parts "
                      f"FROM outbox WHERE {where} ORDER BY priority, id LIMIT {int(limit)}", params)
    return [Pending(row[0], row[1], row[2], row[3], render(catalog, *row[4:9])) for row in rows]


def render(catalog: Catalog, template: str, locale: str, context: str, buttons: str,
           parts: str | None = None) -> Rendered:
    """An outbox row's template, variables, buttons and files, in the student's language."""
    stored = json.loads(parts) if parts else {}
    files = {kind: FilePart(FileRef.from_json(part["file"]), part.get("caption")) for kind, part in stored.items()}
    message = Outbound(template, json.loads(context),
                       tuple(Button(label, payload, ctx) for label, payload, ctx in json.loads(buttons)),
                       image=files.get("image"), document=files.get("document"))
    return render_message(catalog, message, locale)


def render_message(catalog: Catalog, message: Outbound, locale: str) -> Rendered:
    """`message` as the channels get it: the catalog's text and buttons, and each file with its caption
    and the sentence to send instead when a channel cannot show it."""
    rendered = catalog.render(message, locale)
    if message.image is None and message.document is None:
        return rendered
    return replace(rendered, image=_render_file(catalog, message, message.image, locale),
                   document=_render_file(catalog, message, message.document, locale))


def _render_file(catalog: Catalog, message: Outbound, part: FilePart | None, locale: str) -> RenderedFile | None:
    if part is None:
        return None
    caption = catalog.text(part.caption, locale, message.context) if part.caption else None
    fallback = catalog.text("artifacts/unavailable", locale, {"name": part.file.name, "caption": caption})
    return RenderedFile(part.file, caption, fallback)


def mark_sent(store: Store, outbox_id: int, now: datetime, external_id: str | None = None) -> None:
    with store.transaction() as tx:
        tx.execute("UPDATE outbox SET status = 'sent', sent_at = ?, external_id = ?, attempts = attempts + 1 "
                   "WHERE id = ?", (tx.ts(now), external_id, outbox_id))
