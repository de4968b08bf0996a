"""`companion calendar import|sessions|show|remove` and `companion schedule show|plan`: the school year and the
nudges, for admins."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from core.engine.pipeline import utc_now


def register(main: click.Group, make_app: Callable[[click.Context], Any]) -> None:
    """Add the `calendar` and `schedule` command groups to `main`; `make_app(ctx)` gives an App with `.engine`."""

    @main.group()
    def calendar() -> None:
        """The school year: calendars (.ics files or URLs) and the roster's academic sessions."""

    @calendar.command("import")
    @click.argument("source")
    @click.option("--school", default=None, help="The school's sourced id (needed when there are several).")
    @click.option("--holidays", is_flag=True, help="A list of public holidays: every all-day event is a closure.")
    @click.option("--dry-run", is_flag=True, help="Say what would be imported, and save nothing.")
    @click.pass_context
    def calendar_import(ctx: click.Context, source: str, school: str | None, holidays: bool, dry_run: bool) -> None:
        """Import SOURCE: an .ics file, or a calendar's URL (http, https or webcal), which `serve` then reads again
        every day. Prints what was understood: terms, grading periods, closures, exam weeks, early dismissals,
        what was left out and every quirk accepted. Importing again replaces what came from SOURCE and reports
        only what changed; a bad file names its line and event and imports nothing."""
        from core.school.calendar import CalendarError, calendar_url, import_calendar, import_url, shown_source

        application = make_app(ctx)
        url = calendar_url(source)
        try:
            if url is not None:
                name = shown_source(url)
                report = import_url(application.engine, url, utc_now(), school, holidays=holidays, dry_run=dry_run)
            else:
                path = Path(source)
                name = path.name
                if not path.is_file():
                    raise click.ClickException(f"{source}: no such file (or an http, https or webcal address)")
                report = import_calendar(application.engine, path, utc_now(), school, source=path.name,
                                         holidays=holidays, dry_run=dry_run)
        except CalendarError as error:
            raise click.ClickException(f"{name}: {error} — nothing was imported") from error
        for line in report.lines():
            click.echo(line)

    @calendar.command("sessions")
    @click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
    @click.option("--school", default=None, help="The school's sourced id (default: every school of orgs.csv).")
    @click.option("--dry-run", is_flag=True, help="Say what would be imported, and save nothing.")
    @click.pass_context
    def calendar_sessions(ctx: click.Context, directory: Path, school: str | None, dry_run: bool) -> None:
        """Import DIRECTORY/academicSessions.csv (OneRoster 1.1 or 1.2): terms and grading periods, exactly.
        `companion roster import` reads it too when the roster directory has one."""
        application = make_app(ctx)
        import_school_year(application, directory, school, dry_run, required=True)

    @calendar.command("show")
    @click.option("--from", "start", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help="List what ends on or after this day (YYYY-MM-DD); default: today.")
    @click.option("--school", default=None, help="The school's sourced id (needed when there are several).")
    @click.pass_context
    def calendar_show(ctx: click.Context, start, school: str | None) -> None:
        """What is stored: every term, grading period, closure, exam week and early dismissal, with its source,
        and the calendars read again daily by URL."""
        from core.school.calendar import CalendarError, stored_calendar

        application = make_app(ctx)
        day = start.date() if start else utc_now().date()
        try:
            stored = stored_calendar(application.engine, school, day)
        except CalendarError as error:
            raise click.ClickException(str(error)) from error
        for line in stored.lines(day):
            click.echo(line)

    @calendar.command("remove")
    @click.argument("source")
    @click.option("--school", default=None, help="The school's sourced id (needed when there are several).")
    @click.pass_context
    def calendar_remove(ctx: click.Context, source: str, school: str | None) -> None:
        """Delete what came from SOURCE (a file's name, a URL, "feed N" as `calendar show` numbers it, or
        "roster"), and stop reading a URL again."""
        from core.school.calendar import CalendarError, remove_source, shown_source

        application = make_app(ctx)
        try:
            removed, count = remove_source(application.engine, school, source)
        except CalendarError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"removed {count} calendar events from {shown_source(removed)}")

    @main.group()
    def schedule() -> None:
        """Nudges: what is due for each person, and why not."""

    @schedule.command("show")
    @click.argument("person")
    @click.option("--from", "start", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                  help="Show from the week holding this day (YYYY-MM-DD); default: this week.")
    @click.option("--weeks", default=2, show_default=True, type=click.IntRange(1, 60), help="How many weeks to show.")
    @click.pass_context
    def schedule_show(ctx: click.Context, person: str, start, weeks: int) -> None:
        """PERSON's nudges (a student's, or an adult's when a trigger is for adults; sourced id, e-mail or name)
        and why: every trigger (weekly, after a calendar event, at a chosen time, on demand), its status and reason."""
        from core.schedule.policy import find_people, nudged_roles, outlook

        application = make_app(ctx)
        found = find_people(application.engine, person, nudged_roles(application.registry))
        if not found:
            raise click.ClickException(f"nobody matches {person!r}")
        if len(found) > 1:
            names = ", ".join(f"{name} (id {person_id})" for person_id, name in found[:10])
            raise click.ClickException(f"{len(found)} people match {person!r}: {names} — be more precise")
        seen = outlook(application.engine, application.registry, found[0][0], utc_now(), weeks,
                       start.date() if start else None)
        role = "" if seen.role == "student" else f", {seen.role}"
        click.echo(f"{seen.name} (id {seen.person_id}{role}): {seen.zone}, prefers {seen.preferred:%H:%M}")
        width = max((len(nudge.kind) for nudge in seen.nudges), default=8)
        for nudge in seen.nudges:
            when = f"{nudge.local:%a %d %b %Y %H:%M %Z}" if nudge.local else "—"
            why = f"  {nudge.reason}" if nudge.reason else ""
            how = nudge.when.replace("_", " ")
            click.echo(f"  {when:<26} {nudge.kind:<{width}}  {how:<9} {nudge.status:<8}{why}".rstrip())

    @schedule.command("plan")
    @click.pass_context
    def schedule_plan(ctx: click.Context) -> None:
        """Plan everyone's nudges for this week and next (every trigger but the on-demand ones); planning again
        updates what has not gone out."""
        from core.schedule.policy import plan_coming_weeks

        application = make_app(ctx)
        written = plan_coming_weeks(application.engine, application.registry, utc_now())
        click.echo(f"{written} nudges planned or updated for this week and next")


def import_school_year(application: Any, directory: Path, school: str | None = None, dry_run: bool = False,
                       required: bool = False) -> None:
    """Import DIRECTORY/academicSessions.csv and print its reports; without the file, nothing (unless `required`).

    `companion roster import` calls it after the roster, so the school year comes with the roster.
    """
    from core.school.calendar import CalendarError
    from core.school.sessions import SESSIONS_FILE, import_sessions

    if not required and not (Path(directory) / SESSIONS_FILE).is_file():
        return
    try:
        reports = import_sessions(application.engine, Path(directory), utc_now(), school, dry_run)
    except CalendarError as error:
        raise click.ClickException(f"{error} — the school year was not imported") from error
    for report in reports:
        for line in report.lines():
            click.echo(line)
