"""The outbox: messages the engine queued, claimed by a delivery worker and sent exactly once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from core.domain.messages import Button, Outbound, Rendered
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
        rows = tx.all(f"SELECT id, person_id, platform, chat_id, template, locale, context, buttons FROM outbox "
                      f"WHERE {where} ORDER BY priority, id LIMIT {int(limit)}", params)
    return [Pending(row[0], row[1], row[2], row[3], render(catalog, row[4], row[5], row[6], row[7])) for row in rows]


def render(catalog: Catalog, template: str, locale: str, context: str, buttons: str) -> Rendered:
    """An outbox row's template, variables and buttons, as text in the student's language."""
    message = Outbound(template, json.loads(context),
                       tuple(Button(label, payload, ctx) for label, payload, ctx in json.loads(buttons)))
    return catalog.render(message, locale)


def mark_sent(store: Store, outbox_id: int, now: datetime, external_id: str | None = None) -> None:
    with store.transaction() as tx:
        tx.execute("UPDATE outbox SET status = 'sent', sent_at = ?, external_id = ?, attempts = attempts + 1 "
                   "WHERE id = ?", (tx.ts(now), external_id, outbox_id))
