"""Settings from the environment or a `.env` file (SPEC §8)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from core.domain.models import DEFAULT_LOCALE, DEFAULT_TIMEZONE


class Settings(BaseSettings):
    """Everything a school configures; names follow SPEC §8."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    database_url: str = Field("sqlite:///companion.db", alias="COMPANION_DATABASE_URL")
    school_timezone: str = Field(DEFAULT_TIMEZONE, alias="COMPANION_SCHOOL_TIMEZONE")
    default_locale: str = Field(DEFAULT_LOCALE, alias="COMPANION_DEFAULT_LOCALE")
    # OneRoster classes whose classType or title matches one of these are advisory groups.
    advisory_class_types: str = Field("homeroom,advisory", alias="COMPANION_ADVISORY_CLASS_TYPES")
    # OneRoster has no counselor role: these staff e-mails (comma-separated) get every safety alert.
    counselor_emails: str = Field("", alias="COMPANION_COUNSELOR_EMAILS")
    # Modules of a school's own features, comma-separated, each exposing FEATURE (core/features/__init__.py).
    features: str = Field("", alias="COMPANION_FEATURES")
    # Where files are kept (photos and documents students send, files sent to them): empty for the
    # database, else a folder every process shares (core/domain/files.py).
    file_store: str = Field("", alias="COMPANION_FILE_STORE")
    invite_valid_days: int = Field(30, alias="COMPANION_INVITE_VALID_DAYS")
    # Failed invite-code attempts one chat account may make per hour before it must wait.
    invite_attempts_per_hour: int = Field(5, alias="COMPANION_INVITE_ATTEMPTS_PER_HOUR")

    # Where escalated safety alerts are e-mailed from (smtp://user:password@host:port/?from=…; smtps:// for TLS);
    # the addresses are the school setting safety.escalation_emails.
    smtp_url: str | None = Field(None, alias="COMPANION_SMTP_URL")

    telegram_bot_token: str | None = Field(None, alias="TELEGRAM_BOT_TOKEN")
    telegram_api_url: str | None = Field(None, alias="TELEGRAM_API_URL")
    telegram_webhook_url: str | None = Field(None, alias="TELEGRAM_WEBHOOK_URL")
    telegram_webhook_secret: str | None = Field(None, alias="TELEGRAM_WEBHOOK_SECRET")
    slack_bot_token: str | None = Field(None, alias="SLACK_BOT_TOKEN")
    slack_signing_secret: str | None = Field(None, alias="SLACK_SIGNING_SECRET")
    slack_api_url: str | None = Field(None, alias="SLACK_API_URL")
    http_host: str = Field("127.0.0.1", alias="COMPANION_HTTP_HOST")
    http_port: int = Field(8080, alias="COMPANION_HTTP_PORT")

    @property
    def counselors(self) -> frozenset[str]:
        """Lower-cased e-mails of the school's designated counselors."""
        return frozenset(part.strip().lower() for part in self.counselor_emails.split(",") if part.strip())

    @property
    def advisory_markers(self) -> set[str]:
        """Lower-cased class types or titles that mark an advisory group."""
        return {part.strip().lower() for part in self.advisory_class_types.split(",") if part.strip()}
