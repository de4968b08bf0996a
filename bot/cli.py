"""The `companion` command: chat, demo, roster and invites, database upgrades (SPEC §8)."""

from __future__ import annotations

import logging
import sys
import tempfile
from pathlib import Path

import click

from core.domain import db
from core.config import Settings
from core.engine.pipeline import Engine, utc_now
from core.features import registry
from bot.privacy_cli import find_one, register as register_privacy_commands
from bot.digest_cli import register as register_digest_commands
from bot.schedule_cli import import_school_year, register as register_schedule_commands
from bot.school_cli import register as register_school_commands
from bot.reflection_cli import register as register_reflection_commands
from bot.plan_cli import register as register_plan_commands
from core.domain.store import Store


class App:
    """What every subcommand needs: settings, and a database at the migrations' head.

    `migrate` says who may change the schema: "upgrade" (chat, demo, `db upgrade`: the embedded SQLite file
    builds itself on first use), "once" (serve: processes starting together migrate once), "check" (the
    default, every other command: migrating is the operator's call, so an out-of-date schema only says how).
    """

    def __init__(self, settings: Settings, migrate: str = "check"):
        self.settings = settings
        self.registry = registry(settings.features)
        self.engine = db.make_engine(settings.database_url)
        if migrate == "upgrade":
            db.upgrade(self.engine)
        elif migrate == "once":
            db.upgrade_once(self.engine)
        elif migrate == "check":
            try:
                db.require_current(self.engine)
            except db.OutOfDate as error:
                self.engine.dispose()
                raise click.ClickException(str(error)) from error
        else:
            raise ValueError(f"migrate must be 'upgrade', 'once' or 'check', not {migrate!r}")

    def conversation_engine(self) -> Engine:
        return Engine(Store(self.engine), self.registry, self.settings)


@click.group()
@click.option("--database-url", envvar="COMPANION_DATABASE_URL", default=None,
              help="SQLAlchemy URL; default: sqlite:///companion.db in the current folder.")
@click.pass_context
def main(ctx: click.Context, database_url: str | None) -> None:
    """Learning Companion: weekly goals, reflection and genius hour, in the chat apps students use."""
    overrides = {"COMPANION_DATABASE_URL": database_url} if database_url else {}
    ctx.obj = Settings(**overrides)


def app(ctx: click.Context, migrate: str = "check") -> App:
    return App(ctx.obj, migrate)


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Run the migrations up to the newest schema."""
    app(ctx.parent, migrate="upgrade")
    click.echo("database is up to date")


@main.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the demo OneRoster CSV files (default: a temporary folder).")
@click.pass_context
def demo(ctx: click.Context, directory: Path | None) -> None:
    """Build a demo school through the real OneRoster import, and print its invite codes."""
    build_demo_school(app(ctx, migrate="upgrade"), directory)


def build_demo_school(application: App, directory: Path | None) -> list:
    from core.school.demo import build_demo

    with tempfile.TemporaryDirectory() as scratch:
        result = build_demo(application.engine, directory or Path(scratch), utc_now())
    for line in result["report"].lines():
        click.echo(line)
    click.echo("\nInvite codes (a student sends one to start):")
    for invite in result["invites"]:
        click.echo(f"  {invite.code}  {invite.given_name} {invite.family_name}")
    return result["invites"]


@main.command()
@click.option("--user", default="student", show_default=True,
              help="The console account to chat as; each name is its own chat account.")
@click.pass_context
def chat(ctx: click.Context, user: str) -> None:
    """Chat with the bot in this terminal; reads one message per line when stdin is not a terminal.

    On an empty database a demo school is built first, so this works with nothing set up.
    """
    from bot.console import ConsoleChat
    from core.domain.models import Person
    from sqlmodel import Session, select

    application = app(ctx, migrate="upgrade")
    with Session(application.engine) as session:
        empty = session.exec(select(Person.id).limit(1)).first() is None
    if empty:
        invites = build_demo_school(application, None)
        click.echo(f"\nType an invite code to start, for example {invites[0].code}\n")
    console = ConsoleChat(application.conversation_engine(), user, click.echo)
    console.resume()
    if sys.stdin.isatty():
        console.run((), prompt=lambda: input("> "))
    else:
        console.run(sys.stdin)


@main.command()
@click.pass_context
def serve(ctx: click.Context) -> None:
    """Run Telegram, Slack, the HTTP endpoints, delivery and the nudge sweeps until SIGTERM."""
    from bot.serve import StartupError, serve as run_serve

    application = app(ctx, migrate="once")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        run_serve(application.settings, application.engine)
    except StartupError as error:
        raise click.ClickException(str(error)) from error


@main.group()
def roster() -> None:
    """The school's roster (OneRoster 1.1 or 1.2 bulk CSV)."""


@roster.command("import")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--readmit", "readmit", multiple=True, metavar="ID",
              help="Create this forgotten person again (their roster sourcedId); repeatable.")
@click.pass_context
def roster_import(ctx: click.Context, directory: Path, readmit: tuple[str, ...]) -> None:
    """Import a OneRoster 1.1 or 1.2 bulk export from DIRECTORY (manifest.csv's oneroster.version decides):
    orgs.csv, users.csv (1.2: roles.csv, userProfiles.csv), classes.csv and enrollments.csv; re-import updates.
    An academicSessions.csv there gives the school year's terms and grading periods.

    A person's own role decides what they are here, never an enrollment; who left (absent, tobedeleted,
    disabled) becomes inactive. A person forgotten earlier (`companion forget`) whose id reappears is
    reported and not created, unless named with --readmit. A refused export names file, line and column
    and imports nothing.
    """
    from core.school.roster import RosterError, import_roster

    application = app(ctx.parent)
    try:
        settings = application.settings
        report = import_roster(application.engine, directory, settings.advisory_markers,
                               school_timezone=settings.school_timezone, school_locale=settings.default_locale,
                               counselor_emails=settings.counselors, readmit=readmit)
    except RosterError as error:
        raise click.ClickException(f"{error} — nothing was imported") from error
    for line in report.lines():
        click.echo(line)
    import_school_year(application, directory)  # academicSessions.csv, when the export has one


@main.command()
@click.option("--out", type=click.File("w", encoding="utf-8"), default="-", help="CSV file (default: stdout).")
@click.option("--bot-username", default=None, help="Telegram bot username, for t.me deep links.")
@click.option("--role", "roles", multiple=True, default=("student",), show_default=True,
              type=click.Choice(["student", "adviser", "counselor", "admin"]), help="Whose codes; repeatable.")
@click.option("--reissue", "reissue", default=None, metavar="PERSON",
              help="A fresh code for one person (sourced id, e-mail or name) that may replace their account; "
                   "the old account is told it was unlinked, and their other unused codes stop working.")
@click.pass_context
def invites(ctx: click.Context, out, bot_username: str | None, roles: tuple[str, ...], reissue: str | None) -> None:
    """Export single-use, expiring invite codes for everyone of ROLE not yet linked, as CSV."""
    from core.school.invites import issue_invites, reissue_invite, write_invites_csv

    application = app(ctx)
    if reissue is not None:
        person_id, _ = find_one(application, reissue)
        rows = [reissue_invite(application.engine, person_id, utc_now(), application.settings.invite_valid_days)]
    else:
        rows = issue_invites(application.engine, utc_now(), application.settings.invite_valid_days, roles=roles)
    write_invites_csv(rows, out, bot_username=bot_username)


@main.command()
@click.option("--format", "fmt", type=click.Choice(["mermaid", "text"]), default="mermaid", show_default=True)
@click.pass_context
def flows(ctx: click.Context, fmt: str) -> None:
    """Print a diagram of every conversation flow, generated from its state table."""
    from core.engine.diagram import mermaid, outline

    for flow in registry(ctx.obj.features).flows.values():
        click.echo(mermaid(flow) if fmt == "mermaid" else outline(flow))
        click.echo()


register_schedule_commands(main, app)
register_privacy_commands(main, app)
register_digest_commands(main, app)
register_school_commands(main, app)
register_reflection_commands(main, app)
register_plan_commands(main, app)

if __name__ == "__main__":
    main()
