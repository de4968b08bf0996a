"""E-mail as a channel: escalated safety alerts reach the school's escalation addresses (SPEC §2).

Only outbound: delivery hands it outbox rows whose platform is "email" and whose chat id is the
address. `COMPANION_SMTP_URL` turns it on: `smtp://user:password@host:port/?from=alerts@school.org`
(STARTTLS when the server offers it) or `smtps://…` (TLS from the start). The standard library's
smtplib speaks SMTP well; it runs in a thread so the event loop is never blocked.
"""

from __future__ import annotations

import asyncio
import smtplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import make_msgid
from urllib.parse import parse_qs, unquote, urlsplit

from bot.channel import Channel
from core.config import Settings
from core.delivery.worker import CannotTell, Limits, Refused, Unavailable
from core.domain.messages import Rendered

PLATFORM = "email"


class EmailChannel(Channel):
    """Sends outbox rows as plain-text e-mail through one SMTP server."""

    platform = PLATFORM
    limits = Limits(per_chat=1.0, per_bot=5.0)
    needs = "COMPANION_SMTP_URL"
    chat = False

    @classmethod
    def configured(cls, settings: Settings) -> bool:
        return bool(settings.smtp_url)

    @classmethod
    def problems(cls, settings: Settings) -> list[str]:
        url = urlsplit(settings.smtp_url or "")
        if settings.smtp_url and (url.scheme not in ("smtp", "smtps") or not url.hostname):
            return ["COMPANION_SMTP_URL must look like smtp://user:password@host:587/?from=alerts@school.org"]
        if settings.smtp_url and not parse_qs(url.query).get("from"):
            return ["COMPANION_SMTP_URL needs the sender address: …/?from=alerts@school.org"]
        return []

    async def send(self, chat_id: str, message: Rendered, outbox_id: int) -> str:
        """One e-mail to `chat_id`: the first line is the subject, the whole text the body."""
        return await asyncio.to_thread(self._send, chat_id, message, outbox_id)

    def _send(self, address: str, message: Rendered, outbox_id: int) -> str:
        url = urlsplit(self.settings.smtp_url)
        mail = EmailMessage()
        mail["From"] = parse_qs(url.query)["from"][0]
        mail["To"] = address
        mail["Subject"] = message.text.splitlines()[0][:150] if message.text else "Learning Companion"
        mail["Message-ID"] = make_msgid(idstring=f"outbox-{outbox_id}")
        mail.set_content(message.text)
        connect = smtplib.SMTP_SSL if url.scheme == "smtps" else smtplib.SMTP
        try:
            with connect(url.hostname, url.port or (465 if url.scheme == "smtps" else 25), timeout=30) as server:
                if url.scheme == "smtp" and server.has_extn("starttls"):
                    server.starttls()
                if url.username:
                    server.login(unquote(url.username), unquote(url.password or ""))
                server.send_message(mail)
        except smtplib.SMTPRecipientsRefused as error:
            raise Refused(f"the mail server refused {address}") from error
        except (smtplib.SMTPException, OSError) as error:
            raise Unavailable(f"mail server: {type(error).__name__}") from error
        return mail["Message-ID"]

    async def find_sent(self, chat_id: str, outbox_id: int, since: datetime) -> str | None:
        """A mail server cannot say whether a message went out: it is sent again (at most once more)."""
        raise CannotTell()
