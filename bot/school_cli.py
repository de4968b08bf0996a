"""`companion school show|set`: a school's typed settings, every key with its value and default."""

from __future__ import annotations

from typing import Any, Callable

import click

from core.engine.pipeline import utc_now


def register(main: click.Group, make_app: Callable[[click.Context], Any]) -> None:
    """Add the `school` command group to `main`; `make_app(ctx)` gives an App with `.engine` and `.registry`."""

    @main.group()
    def school() -> None:
        """School settings: schedule, nudges and what each feature adds."""

    @school.command("show")
    @click.option("--school", "school_ref", default=None, help="The school's sourced id or number (needed when there are several).")
    @click.pass_context
    def school_show(ctx: click.Context, school_ref: str | None) -> None:
        """Every setting: its value for the school, its default, and what it does."""
        from core.domain.store import Store

        application = make_app(ctx)
        catalog = application.registry.settings
        with Store(application.engine).transaction() as tx:
            school_id, name = _school(tx, school_ref)
            values = catalog.load(tx)[school_id]
        click.echo(f"{name} (school {school_id})")
        for key in sorted(catalog.keys.values(), key=lambda key: key.name):
            shown, default = values.show(key.name), key.kind.show(key.default)
            marker = "" if shown == default else f"   (default {default})"
            click.echo(f"  {key.name:<24} {shown}{marker}\n  {'':<24} {key.help}")

    @school.command("set")
    @click.argument("key")
    @click.argument("value")
    @click.option("--school", "school_ref", default=None, help="The school's sourced id or number (needed when there are several).")
    @click.pass_context
    def school_set(ctx: click.Context, key: str, value: str, school_ref: str | None) -> None:
        """Set KEY to VALUE for the school, after checking it fits the key's type."""
        from core.domain.settings import SettingError
        from core.domain.store import Store

        application = make_app(ctx)
        catalog = application.registry.settings
        try:
            with Store(application.engine).transaction() as tx:
                school_id, name = _school(tx, school_ref)
                stored = catalog.set(tx, school_id, key, value, utc_now())
                tx.audit("cli", "school_setting", None, {"school": school_id, "key": key, "value": value}, utc_now())
        except SettingError as error:
            raise click.ClickException(str(error)) from error
        click.echo(f"{name}: {key} = {catalog.key(key).kind.show(stored)}")


def _school(tx, ref: str | None) -> tuple[int, str]:
    """The school `ref` names (sourced id or number), or the only one there is."""
    schools = tx.all("SELECT id, sourced_id, name FROM school ORDER BY id")
    if ref is not None:
        schools = [row for row in schools if ref in (row[1], str(row[0]))]
    if len(schools) == 1:
        return schools[0][0], schools[0][2]
    if not schools:
        raise click.ClickException(f"no school {ref!r}" if ref else "no school yet: import a roster first")
    names = ", ".join(f"{row[1]} ({row[2]})" for row in schools)
    raise click.ClickException(f"{len(schools)} schools: choose one with --school: {names}")
