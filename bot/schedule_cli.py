"""`companion calendar import` and `companion schedule show|plan`: the school calendar and the nudges, for admins."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from core.engine.pipeline import utc_now


def register(main: click.Group, make_app: Callable[[click.Context], Any]) -> None:
    """Add the `calendar` and `schedule` command groups to `main`; `make_app(ctx)` gives an App with `.engine`."""

    @main.group()
    def calendar() -> None:
        """The school calendar (iCalendar .ics): terms, grading periods, holidays, exam weeks."""

    @calendar.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--school", default=None, help="The school's sourced id (needed when there are several).")
    @click.pass_context
    def calendar_import(ctx: click.Context, file: Path, school: str | None) -> None:
        """Import FILE.ics; importing again updates events by UID. A bad file imports nothing."""
        from core.school.calendar import CalendarError, import_calendar

        application = make_app(ctx)
        try:
            report = import_calendar(application.engine, file.read_bytes(), utc_now(), school)
        except CalendarError as error:
            raise click.ClickException(f"{file.name}: {error} — nothing was imported") from error
        for line in report.lines():
            click.echo(line)

    @main.group()
    def schedule() -> None:
        """Nudges: what is due for each student, and why not."""

    @schedule.command("show")
    @click.argument("student")
    @click.option("--weeks", default=2, show_default=True, help="How many weeks to show, this one first.")
    @click.pass_context
    def schedule_show(ctx: click.Context, student: str, weeks: int) -> None:
        """What is next for STUDENT (sourced id, e-mail or name) and why: holiday, pause, cap, quiet hours."""
        from core.schedule.policy import find_students, outlook

        application = make_app(ctx)
        found = find_students(application.engine, student)
        if not found:
            raise click.ClickException(f"no student matches {student!r}")
        if len(found) > 1:
            names = ", ".join(f"{name} (id {person_id})" for person_id, name in found[:10])
            raise click.ClickException(f"{len(found)} students match {student!r}: {names} — be more precise")
        seen = outlook(application.engine, application.registry, found[0][0], utc_now(), weeks)
        click.echo(f"{seen.name} (id {seen.person_id}): {seen.zone}, prefers {seen.preferred:%H:%M}")
        for nudge in seen.nudges:
            why = f"  {nudge.reason}" if nudge.reason else ""
            click.echo(f"  {nudge.local:%a %d %b %H:%M %Z}  {nudge.kind:<8} {nudge.status:<8}{why}")

    @schedule.command("plan")
    @click.pass_context
    def schedule_plan(ctx: click.Context) -> None:
        """Plan every student's nudges for this week and next; planning again updates what has not gone out."""
        from core.schedule.policy import plan_coming_weeks

        application = make_app(ctx)
        written = plan_coming_weeks(application.engine, application.registry, utc_now())
        click.echo(f"{written} nudges planned or updated for this week and next")
