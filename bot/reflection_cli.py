"""`companion reflection start --school ID | --group ID`: ask a school's or a group's students to reflect on
the grading period, through the nudge policy (their time, quiet hours, holidays, pauses, the weekly cap)."""

from __future__ import annotations

from typing import Any, Callable

import click

from core.engine.pipeline import utc_now

REQUEST = "report_card_asked"  # the on-demand trigger of core/features/reflection.py


def register(main: click.Group, make_app: Callable[[click.Context], Any]) -> None:
    """Add the `reflection` command group to `main`; `make_app(ctx)` gives an App with `.engine` and `.registry`."""

    @main.group()
    def reflection() -> None:
        """The report-card reflection."""

    @reflection.command("start")
    @click.option("--school", "school_ref", default=None, help="A school's sourced id or number: all its students.")
    @click.option("--group", "group_ref", default=None,
                  help="An advisory group's or class's sourced id (or an advisory group's number): its students.")
    @click.pass_context
    def start(ctx: click.Context, school_ref: str | None, group_ref: str | None) -> None:
        """Ask every current student of a school or of a group to reflect on the grading period that just ended.
        Each gets it at their next good moment (their check-in time, out of quiet hours, on a school day); a
        student who stopped, paused or whose week is full is skipped, and asking again the same day adds nothing."""
        from core.domain.store import Store
        from core.schedule.policy import on_demand

        if (school_ref is None) == (group_ref is None):
            raise click.UsageError("give exactly one of --school and --group")
        application = make_app(ctx)
        store = Store(application.engine)
        with store.transaction() as tx:
            name, students = _school_students(tx, school_ref) if school_ref else _group_students(tx, group_ref)
        queued = on_demand(store, application.registry, REQUEST, students, utc_now())
        click.echo(f"{name}: {len(students)} student{'s' if len(students) != 1 else ''}, "
                   f"{queued} asked to reflect ({len(students) - queued} already asked today or not nudged now: "
                   "see `companion schedule show`)")


CURRENT = "p.role = 'student' AND p.left_on IS NULL"


def _school_students(tx, ref: str) -> tuple[str, list[int]]:
    found = tx.one("SELECT id, name FROM school WHERE sourced_id = ? OR CAST(id AS TEXT) = ?", (ref, ref))
    if found is None:
        raise click.ClickException(f"no school {ref!r}")
    school_id, name = found
    return name, [row[0] for row in tx.all(
        f"SELECT p.id FROM person p WHERE {CURRENT} AND (p.school_id = ? OR p.id IN "
        "(SELECT person_id FROM personschool WHERE school_id = ?)) ORDER BY p.id", (school_id, school_id))]


def _group_students(tx, ref: str) -> tuple[str, list[int]]:
    group = tx.one("SELECT id, title FROM advisorygroup WHERE sourced_id = ? OR CAST(id AS TEXT) = ?", (ref, ref))
    if group is not None:
        return group[1], [row[0] for row in tx.all(
            f"SELECT p.id FROM person p JOIN advisorymember m ON m.person_id = p.id AND m.role = 'student' "
            f"WHERE m.group_id = ? AND {CURRENT} ORDER BY p.id", (group[0],))]
    taught = tx.one("SELECT id, title FROM rosterclass WHERE sourced_id = ?", (ref,))
    if taught is None:
        raise click.ClickException(f"no advisory group or class {ref!r}")
    return taught[1], [row[0] for row in tx.all(
        f"SELECT DISTINCT p.id FROM person p JOIN enrollment e ON e.person_id = p.id AND e.role = 'student' "
        f"WHERE e.class_id = ? AND {CURRENT} ORDER BY p.id", (taught[0],))]
