"""The weekly digest an adviser opens to know who needs them first and what to say to each.

    header (class figures against last week, highlights, the chart as an image)
    triage, in chunks of a few students: each with the reasons and their evidence, a suggestion,
    and a "Followed up" button

Built by `compose` for one adviser (the scheduled trigger runs `/digest` through the pipeline;
`companion digest` and the benchmark call it directly). Messages are chunked so that every
channel's limits hold (Slack: 25 buttons and 3,000 characters a block; Telegram: 4,096 characters).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime

from core.domain import access
from core.domain.files import FolderFiles, content_key
from core.domain.messages import Button, FilePart, FileRef, Outbound
from core.domain.store import Tx
from core.engine.registry import Registry
from core.features.advisers import figures
from core.features.advisers.triage import Entry, full_name, highlights_of, triage
from core.render.charts import TrendChart
from core.render.templates import Catalog

CHUNK = 5  # students per triage message
HIGHLIGHTS_SHOWN = 12  # students with good news named in the header; the rest are counted (a message's length)
CHART_NAME = "class-trend.png"
_charts = threading.local()  # one reusable figure per thread: a fresh one costs twice as much to draw


def chart_drawer() -> TrendChart:
    """This thread's chart (matplotlib figures are not thread-safe)."""
    if not hasattr(_charts, "chart"):
        _charts.chart = TrendChart()
    return _charts.chart


@dataclass
class Digest:
    """One adviser's digest before it is stored: its messages and the chart's PNG."""

    messages: list[Outbound]
    png: bytes | None


def entry_context(entry: Entry, today: date, suggestion: dict, catalog: Catalog, locale: str) -> dict:
    """A triage entry as a template reads it (JSON: it travels in the outbox)."""
    name = full_name(entry.student)
    return {"student": {key: entry.student[key] for key in ("id", "given_name", "family_name")},
            "score": entry.score, "reasons": [found.as_context(today, catalog, locale, name) for found in entry.reasons],
            "followed_up": ({key: entry.followed_up[key] for key in ("by", "at", "note")}
                            if entry.followed_up else None),
            "fresh": entry.fresh, "suggestion": suggestion}


def suggestions(tx: Tx, ids: list[int], today: date) -> dict[int, dict]:
    """What to build on for each student: a strength and an interest from their profile, the goal they work on."""
    found: dict[int, dict] = {student: {"strength": None, "interest": None, "goal": None} for student in ids}
    if not ids:
        return found
    marks = ", ".join("?" * len(ids))
    for student, strengths, interests in tx.all(
            f"SELECT person_id, strengths, interests FROM learnerprofile WHERE person_id IN ({marks})", ids):
        found[student].update(strength=first_item(strengths), interest=first_item(interests))
    for student, text in tx.all(f"SELECT person_id, text FROM goal WHERE person_id IN ({marks}) AND status = 'open' "
                                "ORDER BY week_start, id", ids):
        found[student]["goal"] = text  # the newest open goal wins
    return found


def first_item(words: str | None) -> str | None:
    """The first thing of a list a student typed ("art, math and music" → "art")."""
    if not words:
        return None
    for separator in (",", ";", "\n", " and ", " y "):
        words = words.split(separator)[0]
    return words.strip() or None


def compose(tx: Tx, registry: Registry, catalog: Catalog, adviser_id: int | None, today: date, locale: str,
            name: str, students: list[dict] | None = None, chart: bool = True) -> Digest:
    """The digest of the students `adviser_id` may see (None: the operator: `students` given); `chart` draws it."""
    if students is None:
        students = access.visible_students(tx, adviser_id, access.View.digest)
    ids = [student["id"] for student in students]
    ranked = triage(tx, registry, students, today)
    advice = suggestions(tx, [entry.student["id"] for entry in ranked], today)
    lines = [entry_context(entry, today, advice[entry.student["id"]], catalog, locale) for entry in ranked]
    highlights = highlights_of(tx, registry, students, today, catalog, locale)
    highlighted = [{"student": full_name(student), "lines": highlights[student["id"]]}
                   for student in students if student["id"] in highlights]
    highlighted, more_highlights = highlighted[:HIGHLIGHTS_SHOWN], max(0, len(highlighted) - HIGHLIGHTS_SHOWN)
    class_figures, history = figures.class_figures(tx, ids, today)
    png = None
    if ids and chart:
        labels = {key: catalog.label(f"adviser.chart_{key}", locale) for key in ("set", "reviewed", "done")}
        weeks = [catalog.label("adviser.chart_week", locale, {"day": week.start.day, "month": week.start.month})
                 for week in history]
        png = chart_drawer().png(catalog.label("adviser.chart_title", locale), weeks,
                                 figures.chart_series(history, len(ids), labels))
    header = Outbound("adviser/digest", {"name": name, "week": figures.reported_week(today).isoformat(),
                                         "students": len(ids), "in_triage": len(lines),
                                         "fresh": sum(line["fresh"] for line in lines),
                                         "highlights": highlighted, "more_highlights": more_highlights,
                                         "figures": class_figures})
    messages = [header]
    for start in range(0, len(lines), CHUNK):
        chunk = lines[start:start + CHUNK]
        messages.append(Outbound("adviser/digest_triage", {"entries": chunk, "first": start + 1,
                                                           "total": len(lines)},
                                 tuple(follow_up_button(line["student"]) for line in chunk)))
    return Digest(messages, png)


def follow_up_button(student: dict) -> Button:
    return Button("adviser.followed_up", f"/followedup {student['id']}", {"name": student["given_name"]})


def keep_chart(tx: Tx, files_location: str, png: bytes, now: datetime) -> FileRef:
    """Keep the chart in the file store inside the caller's transaction (the database kind), or the folder;
    the same picture is stored once."""
    ref = FileRef(content_key(png), CHART_NAME, "image/png", len(png))
    if files_location:
        FolderFiles(files_location).put(png, ref.name, ref.mime, key=ref.key)
    else:
        tx.execute("INSERT INTO storedfile (key, person_id, name, mime, size, data, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                   (ref.key, None, ref.name, ref.mime, ref.size, png, tx.ts(now)))
    return ref


def with_chart(digest: Digest, ref: FileRef | None) -> list[Outbound]:
    """The digest's messages, the header carrying the chart as its image."""
    if ref is None:
        return digest.messages
    header, *rest = digest.messages
    return [Outbound(header.template, header.context, header.buttons, image=FilePart(ref, "adviser/chart_caption")),
            *rest]
