"""Logs that keep secrets: no log line holds a person's words or a token, whoever wrote it.

The project's own log calls never pass message text (ids, counts and kinds only). The libraries
are another matter: slack_bolt logs the whole body of a request it refuses, slack_sdk and
python-telegram-bot log request parameters and responses at DEBUG (a student's words, a reply
quoting them), httpx logs every Bot API URL (the token is in it), and an error may print a URL or
the token itself. `install` puts one `Redactor` where every record passes:

- the log record factory, so a record is cleaned as it is made, whatever logger made it and
  whatever handler (added now or later) prints it;
- a filter on the root logger's handlers and on the libraries' top loggers, as a second net.

A record is cleaned once: its message is formatted, then

- for a library's record, each argument that is not a plain value (a dict of parameters, an
  `Update`, a response) becomes its type's name, the message is cut where a body begins
  (`body:`, `params:`, `headers:`, `payload=` …) and a `{…}` left in it is emptied;
- for every record, tokens are redacted: Telegram's `<bot id>:<secret>`, Slack's `xox?-…` and
  `xapp-…`, and the configured secrets themselves (bot tokens, signing and webhook secrets, the
  passwords in database and SMTP URLs);
- a traceback is formatted, redacted the same way, and its lines that quote a row or a statement's
  parameters (`Failing row contains`, `[parameters: …]`) are dropped.

`serve` writes each record as one JSON line (`JsonLines`): time, level, logger, message, and the
ids an event carries (`extra={"event": "outbox.sent", "person_id": 12, ...}`: the person's internal
id, never their words), so a log pipeline can count and follow events without parsing sentences.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import re
from typing import Iterable
from urllib.parse import urlsplit

OWN = ("bot", "core", "migrations", "__main__")  # loggers of this project: they never pass a person's words
LIBRARIES = ("slack_bolt", "slack_sdk", "telegram", "httpx", "httpcore", "aiohttp", "apscheduler", "sqlalchemy",
             "asyncio", "urllib3", "alembic", "tenacity")
TELEGRAM_TOKEN = re.compile(r"(?<!\d)(\d+):[\w-]{30,}")  # also inside a URL: /bot<id>:<secret>/
SLACK_TOKEN = re.compile(r"(xox[a-z]|xapp)-[\w-]+")
BODY = re.compile(r"\b(?:body|body_params|json_body|query_params|params|parameters|payload|data|files|headers|"
                  r"content|text|form|submission|values|update)\b\s*[:=`(]", re.IGNORECASE)
DICT = re.compile(r"\{[^{}]*\}")
QUOTES_A_ROW = re.compile(r"Failing row contains|\[parameters:|DETAIL:\s+Key \(", re.IGNORECASE)
PLAIN = (int, float, bool, enum.Enum, dt.date, dt.time, dt.timedelta, type(None))
SAFE_MODULES = ("apscheduler.",)  # objects whose text is safe to log (a scheduler job: its name and trigger)
REDACTED = "[redacted]"
DROPPED = "[…]"


class Redactor(logging.Filter):
    """Cleans log records of secrets and people's words (see the module's docstring)."""

    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str | None]) -> None:
        """More literal secrets to redact (short ones are ignored: they would blank out ordinary words)."""
        self.secrets.update(secret for secret in secrets if secret and len(secret) >= 6)

    def filter(self, record: logging.LogRecord) -> bool:
        self.clean(record)
        return True

    def clean(self, record: logging.LogRecord) -> logging.LogRecord:
        """`record` with its message formatted and cleaned, its traceback likewise; done once per record."""
        if getattr(record, "redacted", False):
            return record
        library = record.name.split(".")[0] not in OWN
        try:
            args = record.args
            if library and args:
                args = ({key: self._arg(value) for key, value in args.items()} if isinstance(args, dict)
                        else tuple(self._arg(value) for value in args))
            message = str(record.msg) % args if args else str(record.msg)
        except Exception:  # a broken format string: keep only its template
            message = str(record.msg)
        if library:
            message = self.cut(message)
        record.msg, record.args = self.redact(message), None
        if record.exc_info:
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_text = "\n".join(self.redact(line) for line in text.splitlines()
                                        if not QUOTES_A_ROW.search(line))
            record.exc_info = None  # a formatter prints exc_text; nothing formats the exception again
        elif record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        record.redacted = True
        return record

    def _arg(self, value: object) -> object:
        """A library's argument as it may be logged: plain values and URLs as they are (tokens are
        redacted later), text cut where a body begins, anything else by its type's name."""
        if isinstance(value, PLAIN):
            return value
        if isinstance(value, (str, BaseException)) or type(value).__name__ == "URL" or \
                type(value).__module__.startswith(SAFE_MODULES):
            return self.cut(str(value))
        return f"<{type(value).__name__}>"

    @staticmethod
    def cut(text: str) -> str:
        """`text` up to where a request's or a response's body begins, with any `{…}` emptied."""
        found = BODY.search(text)
        if found:
            text = text[:found.end()] + DROPPED
        previous = None
        while previous != text:  # nested braces: innermost first
            previous, text = text, DICT.sub("{…}", text)
        return text

    def redact(self, text: str) -> str:
        """`text` with every token and configured secret replaced (a Telegram token keeps its bot id)."""
        text = TELEGRAM_TOKEN.sub(lambda match: f"{match.group(1)}:{REDACTED}", text)
        text = SLACK_TOKEN.sub(lambda match: f"{match.group(1)}-{REDACTED}", text)
        for secret in self.secrets:  # after the patterns, which keep a token's harmless prefix
            text = text.replace(secret, REDACTED)
        return text


# The fields of a record a JSON line carries besides its message: what happened and to whom, by id only.
FIELDS = ("event", "platform", "person_id", "inbox_id", "outbox_id", "worker", "seconds", "problems")


class JsonLines(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, the event's ids, the traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc).isoformat(timespec="milliseconds"),
                "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update((name, getattr(record, name)) for name in FIELDS if getattr(record, name, None) is not None)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["traceback"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, default=str)


def json_lines(stream=None) -> None:
    """Every handler of the root logger writes JSON lines (one to stderr is added if it has none)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(stream))
        root.setLevel(logging.INFO)
    for handler in root.handlers:
        handler.setFormatter(JsonLines())


_installed: Redactor | None = None
_factory = None


def secrets_of(settings) -> list[str]:
    """The secrets a configuration holds: tokens, signing and webhook secrets, URL passwords."""
    found = [settings.telegram_bot_token, settings.slack_bot_token, settings.slack_signing_secret,
             settings.telegram_webhook_secret]
    for url in (settings.database_url, getattr(settings, "smtp_url", None)):
        try:
            password = urlsplit(url or "").password
        except ValueError:
            password = None
        found.append(password)
    return [secret for secret in found if secret]


def install(settings=None, secrets: Iterable[str] = ()) -> Redactor:
    """Clean every log record from now on (idempotent: a second call adds its secrets to the first's)."""
    global _installed, _factory
    if _installed is None:
        _installed = Redactor()
        _factory = logging.getLogRecordFactory()
        made_by = _factory

        def factory(*args, **kwargs) -> logging.LogRecord:
            return _installed.clean(made_by(*args, **kwargs))

        logging.setLogRecordFactory(factory)
    _installed.add([*(secrets_of(settings) if settings is not None else ()), *secrets])
    for handler in logging.getLogger().handlers:
        if _installed not in handler.filters:
            handler.addFilter(_installed)
    for name in LIBRARIES:
        logger = logging.getLogger(name)
        if _installed not in logger.filters:
            logger.addFilter(_installed)
    return _installed


def uninstall() -> None:
    """Undo `install` (tests)."""
    global _installed, _factory
    if _installed is None:
        return
    logging.setLogRecordFactory(_factory)
    for logger in [logging.getLogger(), *(logging.getLogger(name) for name in LIBRARIES)]:
        logger.removeFilter(_installed)
        for handler in logger.handlers:
            handler.removeFilter(_installed)
    _installed = _factory = None
