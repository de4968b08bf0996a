"""`companion export|forget|status`: a student's data for an administrator, and the state of the service."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from core.engine.pipeline import utc_now


def register(main: click.Group, make_app: Callable[[click.Context], Any]) -> None:
    """Add `export`, `forget` and `status` to `main`; `make_app(ctx)` gives an App (engine, registry, settings)."""

    @main.command("export")
    @click.argument("student")
    @click.option("--out", type=click.Path(dir_okay=False, writable=True, path_type=Path), default=None,
                  help="Where to write the JSON (default: stdout).")
    @click.pass_context
    def export_command(ctx: click.Context, student: str, out: Path | None) -> None:
        """Write everything about STUDENT (sourced id, e-mail, id or name) as JSON, their portfolio page inside: what /mydata sends them."""
        from core.domain.store import Store
        from core.features.plan import with_portfolio
        from core.school import privacy

        application = make_app(ctx)
        person_id, name = find_one(application, student)
        now = utc_now()
        with Store(application.engine).transaction() as tx:
            location = application.settings.file_store
            data = with_portfolio(tx, application.registry, person_id, now,
                                  privacy.export(tx, application.registry, person_id, now, location), location)
            tx.audit("cli", "data_exported", person_id, {"rows": sum(len(rows) for rows in data["tables"].values())},
                     now)
        payload = privacy.export_bytes(data)
        if out is None:
            click.echo(payload.decode())
        else:
            out.write_bytes(payload)
            click.echo(f"{name}: {sum(len(rows) for rows in data['tables'].values())} records written to {out}",
                       err=True)

    @main.command("forget")
    @click.argument("student")
    @click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
    @click.pass_context
    def forget_command(ctx: click.Context, student: str, yes: bool) -> None:
        """Delete every row about STUDENT and their files, for good, in one transaction.

        An audit entry (with no content) and a tombstone (a hash of the roster id, so a re-import
        does not bring them back unasked) stay.
        """
        from core.school import privacy

        application = make_app(ctx)
        person_id, name = find_one(application, student)
        if not yes:
            click.confirm(f"Delete everything about {name} (id {person_id}) for good?", abort=True)
        try:
            done = privacy.forget(application.engine, application.registry, person_id, utc_now(),
                                  application.settings.file_store, actor="cli",
                                  reason="request" if _requested(application, person_id) else "admin")
        except privacy.PrivacyError as error:
            raise click.ClickException(f"{error} — nothing was deleted") from error
        rows = ", ".join(f"{table} {count}" for table, count in sorted(done.rows.items()))
        click.echo(f"{name} (id {person_id}) forgotten: {sum(done.rows.values())} rows ({rows}), {done.files} files"
                   + ("; their delete request is done" if done.requested else ""))

    @main.command("status")
    @click.pass_context
    def status_command(ctx: click.Context) -> None:
        """The outbox, open safety alerts, delete requests, leavers, the last sweeps and retention run."""
        from core.school import privacy

        for line in privacy.status(make_app(ctx).engine, utc_now()):
            click.echo(line)


def find_one(application: Any, who: str) -> tuple[int, str]:
    """The one person `who` names (sourced id, e-mail, id or part of a name), or a ClickException."""
    from core.school.privacy import find_people

    found = find_people(application.engine, who)
    if not found:
        raise click.ClickException(f"nobody matches {who!r}")
    if len(found) > 1:
        names = ", ".join(f"{name} ({sourced_id}, id {person_id})" for person_id, name, sourced_id in found[:10])
        raise click.ClickException(f"{len(found)} people match {who!r}: {names} — give the sourced id or e-mail")
    person_id, name, sourced_id = found[0]
    return person_id, f"{name} ({sourced_id})"



def _requested(application: Any, person_id: int) -> bool:
    from core.domain.store import Store

    with Store(application.engine).transaction() as tx:
        return tx.one("SELECT 1 FROM deleterequest WHERE person_id = ?", (person_id,)) is not None
