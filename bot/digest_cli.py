"""`companion digest`: the advisers' weekly digest now — queued to each adviser's chat, or printed here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from core.engine.pipeline import utc_now

# An adviser with what sending or printing their digest needs: the school's language and zone if they chose none,
# and their newest chat account that still reaches them.
ADVISER = ("SELECT p.id, p.given_name, p.family_name, COALESCE(p.locale, s.locale), COALESCE(p.timezone, s.timezone), "
           "i.platform, i.external_id, i.chat_id FROM person p LEFT JOIN school s ON s.id = p.school_id "
           "LEFT JOIN chatidentity i ON i.id = (SELECT MAX(r.id) FROM chatidentity r WHERE r.person_id = p.id "
           "AND r.unreachable = ?) WHERE p.role = 'adviser' AND p.status = 'active' AND p.left_on IS NULL {only} "
           "ORDER BY p.id")


def register(main: click.Group, make_app: Callable[[click.Context], Any]) -> None:
    """Add `digest` to `main`; `make_app(ctx)` gives an App (engine, registry, settings)."""

    @main.command("digest")
    @click.option("--adviser", "who", default=None, help="One adviser (id, e-mail, sourced id or name); default: all.")
    @click.option("--print", "print_only", is_flag=True,
                  help="Print the digest here (the chart saved as a PNG file) instead of sending it.")
    @click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True,
                  help="Where --print saves each chart.")
    @click.pass_context
    def digest_command(ctx: click.Context, who: str | None, print_only: bool, out: Path) -> None:
        """Build the weekly digest of every adviser (or one) now: sent through their chat, or printed."""
        from core.domain.models import Role
        from core.domain.store import Store
        from core.school.privacy import find_people

        application = make_app(ctx)
        only, params = "", []
        if who:
            found = find_people(application.engine, who, roles=[Role.adviser])
            if len(found) != 1:
                raise click.ClickException(f"{len(found) or 'no'} advisers match {who!r}: give the id or e-mail")
            only, params = "AND p.id = ?", [found[0][0]]
        with Store(application.engine).transaction() as tx:
            advisers = tx.all(ADVISER.format(only=only), (False, *params))
        conversation = application.conversation_engine()
        for adviser in advisers:
            if print_only:
                print_digest(application, conversation, adviser, out)
            else:
                send_digest(conversation, adviser)


def print_digest(application: Any, conversation: Any, adviser: tuple, out: Path) -> None:
    """The digest as the adviser would read it, on stdout; the chart saved in `out`."""
    from zoneinfo import ZoneInfo

    from core.domain.models import DEFAULT_LOCALE, DEFAULT_TIMEZONE
    from core.domain.store import Store
    from core.features.advisers.digest import compose

    adviser_id, given, family, locale, zone, *_ = adviser
    locale = locale or DEFAULT_LOCALE
    today = utc_now().astimezone(ZoneInfo(zone or DEFAULT_TIMEZONE)).date()
    with Store(application.engine).transaction() as tx:
        digest = compose(tx, application.registry, conversation.catalog, adviser_id, today, locale, given)
    click.echo(f"== {given} {family} (id {adviser_id}) ==")
    for message in digest.messages:
        click.echo(conversation.catalog.render(message, locale).text + "\n")
    if digest.png:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"digest-{adviser_id}-{today.isoformat()}.png"
        path.write_bytes(digest.png)
        click.echo(f"chart: {path}\n")


def send_digest(conversation: Any, adviser: tuple) -> None:
    """The digest through the pipeline, as if the adviser had asked for it: queued for their chat."""
    from core.domain.messages import Inbound

    adviser_id, given, family, _, _, platform, external_id, chat_id = adviser
    if platform is None:
        click.echo(f"{given} {family} (id {adviser_id}): not reachable in chat, nothing sent", err=True)
        return
    queued = conversation.handle(Inbound(platform, f"digest-cli:{adviser_id}:{utc_now().isoformat()}", external_id,
                                         chat_id, payload="/digest"))
    click.echo(f"{given} {family} (id {adviser_id}): {len(queued)} messages queued")
