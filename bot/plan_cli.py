"""`companion competencies import|show`, `companion mastery set|import` and `companion portfolio`: the learning
plan's competencies and levels, and a student's portfolio, for administrators."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any, Callable

import click

from core.engine.pipeline import utc_now


def register(main: click.Group, make_app: Callable[[click.Context], Any]) -> None:
    """Add the `competencies` and `mastery` groups and `portfolio` to `main`; `make_app(ctx)` gives an App."""

    @main.group()
    def competencies() -> None:
        """A school's competencies or standards, for the students' learning plans."""

    @competencies.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option("--school", default=None, help="The school's sourced id (needed when there are several).")
    @click.pass_context
    def competencies_import(ctx: click.Context, file: Path, school: str | None) -> None:
        """Import FILE.csv: columns code, title, subject, description, and optionally grade_levels (the grades a
        competency is for, "6-8", or its own grade mapping, "A=exceeds, B=meets"). Importing again updates by
        code; a bad file names its line and column and imports nothing."""
        from core.domain.store import Store
        from core.school.calendar import CalendarError, find_school
        from core.school.competencies import CompetencyError, import_competencies

        application = make_app(ctx)
        try:
            with Store(application.engine).transaction() as tx:
                found = find_school(tx, school)
                report = import_competencies(tx, found.id, file.read_bytes(), utc_now())
        except (CompetencyError, CalendarError) as error:
            raise click.ClickException(f"{file.name}: {error} — nothing was imported") from error
        click.echo(f"{found.name}:")
        for line in report.lines():
            click.echo(line)

    @competencies.command("show")
    @click.option("--school", default=None, help="The school's sourced id (needed when there are several).")
    @click.pass_context
    def competencies_show(ctx: click.Context, school: str | None) -> None:
        """The school's competencies, by subject and code."""
        from core.domain.store import Store
        from core.school.calendar import CalendarError, find_school
        from core.school.competencies import competencies as listed

        application = make_app(ctx)
        try:
            with Store(application.engine).transaction() as tx:
                rows = listed(tx, find_school(tx, school).id)
        except CalendarError as error:
            raise click.ClickException(str(error)) from error
        for row in rows:
            grades = f" [grades {row['grades']}]" if row["grades"] else ""
            click.echo(f"{row['code']}  {row['title']} ({row['subject'] or '—'}){grades}")
        click.echo(f"{len(rows)} competencies")

    @main.group()
    def mastery() -> None:
        """Students' mastery levels, as teachers give them: beginning, developing, meets, exceeds."""

    @mastery.command("set")
    @click.argument("student")
    @click.argument("code")
    @click.argument("level")
    @click.option("--by", "teacher", default=None, help="The teacher's e-mail, kept with the level.")
    @click.option("--on", "on", default=None, help="The day it was assessed (default: today).")
    @click.pass_context
    def mastery_set(ctx: click.Context, student: str, code: str, level: str, teacher: str | None,
                    on: str | None) -> None:
        """Set STUDENT's LEVEL on the competency CODE: a level (beginning, developing, meets, exceeds, or 1–4)
        or a grade the school maps (grade_levels, e.g. "B+")."""
        from bot.privacy_cli import find_one
        from core.domain.store import Store
        from core.features.plan import school_grades
        from core.school import competencies as comp

        application = make_app(ctx)
        person_id, name = find_one(application, student)
        now = utc_now()
        with Store(application.engine).transaction() as tx:
            school_id = tx.one("SELECT school_id FROM person WHERE id = ?", (person_id,))[0]
            competency = comp.find_competency(tx, school_id, code)
            if competency is None:
                raise click.ClickException(f"no competency {code!r} in {name}'s school "
                                           "(companion competencies show lists them)")
            found = comp.grade_level(level, comp.mapping_for(competency, school_grades(tx, application.registry,
                                                                                       person_id)))
            if found is None:
                raise click.ClickException(f"{level!r} is not a level ({', '.join(comp.LEVELS)}, 1–4) or a grade "
                                           "the school maps (companion school show: grade_levels)")
            try:
                day = comp.parse_day(on) if on else date.today()
            except (ValueError, OverflowError):
                raise click.ClickException(f"--on {on!r} is not a date (2026-11-20)") from None
            comp.record_mastery(tx, person_id, competency["id"], found, day, teacher, now)
            tx.audit("cli", "mastery_set", person_id, {"competency": competency["code"], "level": found}, now)
        click.echo(f"{name}: {competency['code']} {comp.LEVELS[found - 1]}" + (f" (by {teacher})" if teacher else ""))

    @mastery.command("import")
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.pass_context
    def mastery_import(ctx: click.Context, file: Path) -> None:
        """Import FILE.csv: columns student (roster id or e-mail), code, level, and optionally date and teacher.
        A bad file names its line and column and imports nothing; importing it again adds nothing."""
        from core.domain.store import Store
        from core.school import competencies as comp

        application = make_app(ctx)
        now = utc_now()
        try:
            with Store(application.engine).transaction() as tx:
                grades = {school_id: values[comp.GRADE_LEVELS.name]
                          for school_id, values in application.registry.settings.load(tx).items()}
                report = comp.import_mastery(tx, file.read_bytes(), grades, date.today(), now)
                tx.audit("cli", "mastery_imported", None, {"saved": report.saved}, now)
        except comp.CompetencyError as error:
            raise click.ClickException(f"{file.name}: {error} — nothing was imported") from error
        for line in report.lines():
            click.echo(line)

    @main.command("portfolio")
    @click.argument("student")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                  help="The folder to write into (default: here).")
    @click.option("--for", "audience", type=click.Choice(["conference"]), default=None,
                  help="conference: only what the student shares with family.")
    @click.pass_context
    def portfolio_command(ctx: click.Context, student: str, out: Path, audience: str | None) -> None:
        """Write STUDENT's portfolio as Markdown and as one self-contained HTML page (photos inside it); the
        Markdown's chart and files go in a folder beside it."""
        from bot.privacy_cli import find_one
        from core.domain.store import Store
        from core.features.plan import build_portfolio

        application = make_app(ctx)
        person_id, name = find_one(application, student)
        now = utc_now()
        with Store(application.engine).transaction() as tx:
            portfolio = build_portfolio(tx, application.registry, person_id, now, audience or "mine",
                                        application.settings.file_store)
            tx.audit("cli", "portfolio_written", person_id, {"audience": audience or "mine"}, now)
        out.mkdir(parents=True, exist_ok=True)
        for file_name, data in portfolio.files.items():
            (out / portfolio.folder).mkdir(exist_ok=True)
            (out / portfolio.folder / file_name).write_bytes(data)
        (out / f"{portfolio.name}.md").write_text(portfolio.markdown, encoding="utf-8")
        (out / f"{portfolio.name}.html").write_text(portfolio.html, encoding="utf-8")
        click.echo(f"{name}: {out / (portfolio.name + '.html')} and {out / (portfolio.name + '.md')}"
                   + (f", its files in {out / portfolio.folder}" if portfolio.files else ""))
