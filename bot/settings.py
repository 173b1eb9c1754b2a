"""The one place configuration is read: environment variables and an optional ``.env`` file.

Nothing else in the bot reads ``os.environ``. Secrets are ``SecretStr`` so that they never show
up in a repr, a log line or an error message. ``Settings.load()`` turns every problem into a
``SettingsError`` whose message is one line naming the variable; the CLI prints it and exits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["InstallMode", "Mode", "Settings", "SettingsError", "derive_token_url"]

Mode = Literal["serve", "console", "check", "sandbox", "audit"]
#: how the bot gets its Slack token: one SLACK_BOT_TOKEN (HTTP or Socket Mode) or OAuth installs
InstallMode = Literal["token", "socket", "oauth"]

_TOKEN_PATH = "/oauth2/default/v1/token"
_API_HOST = re.compile(r"^(?P<instance>[^.]+)\.api\.(?P<region>[^.]+)\.nexthink\.cloud$")
_QUERY_ID = re.compile(r"^#[a-z0-9_]{2,255}$")


class SettingsError(Exception):
    """A missing or malformed setting; ``str()`` is one line that names the variable."""


def derive_token_url(base_url: str) -> str:
    """``https://acme.api.eu.nexthink.cloud`` → ``https://acme-login.eu.nexthink.cloud/oauth2/...``.

    Any other host (a sandbox, a proxy) is taken to serve the token endpoint itself.
    """
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    match = _API_HOST.match(host)
    if match:
        return f"{parts.scheme}://{match['instance']}-login.{match['region']}.nexthink.cloud{_TOKEN_PATH}"
    return f"{parts.scheme}://{parts.netloc}{_TOKEN_PATH}"


def _check_http_url(value: str | None, name: str) -> str | None:
    if value is None or value == "":
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"must be an http(s) URL such as https://host/, got {value!r}")
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        hide_input_in_errors=True,
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    #: OAuth installs (HTTP mode): all three set, then SLACK_TOKEN_ENCRYPTION_KEY is required
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_state_secret: SecretStr | None = None
    slack_token_encryption_key: SecretStr | None = None

    nexthink_base_url: str | None = None
    nexthink_token_url: str | None = None
    nexthink_client_id: str | None = None
    nexthink_client_secret: SecretStr | None = None
    nexthink_source: str = "slack-chatops"
    nexthink_status_query_id: str | None = None
    #: NQL query taking $upn and listing that person's devices (which computer)
    nexthink_devices_query_id: str | None = None
    devices_cache_seconds: float = Field(default=120.0, ge=0, le=86400)
    nexthink_webhook_token: SecretStr | None = None
    nexthink_connect_timeout: float = Field(default=5.0, gt=0, le=120)
    nexthink_read_timeout: float = Field(default=30.0, gt=0, le=600)
    #: which execute runs go through: auto (V2, V1 once V2 answers 404), v2, v1
    nexthink_execute_api: Literal["auto", "v2", "v1"] = "auto"

    port: int = Field(default=3000, ge=0, le=65535)
    database_url: str = "sqlite:///./nexthink-bot.db"
    policy_file: Path | None = None
    log_format: Literal["json", "console"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    profile_cache_seconds: float = Field(default=900.0, ge=0)
    #: outcome follow-up (with NEXTHINK_STATUS_QUERY_ID): first look after a run, longest pause
    #: between looks, when to give up, how often the loop looks for due follow-ups
    followup_first_poll_seconds: float = Field(default=15.0, gt=0, le=3600)
    followup_max_interval_seconds: float = Field(default=120.0, gt=0, le=3600)
    followup_max_minutes: float = Field(default=30.0, gt=0, le=1440)
    followup_tick_seconds: float = Field(default=2.0, gt=0, le=300)
    #: how often the Home tabs of people who opened them lately are brought up to date
    home_refresh_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: how often expiries, reminders and escalations are looked at (any replica may)
    sweep_seconds: float = Field(default=30.0, ge=0.5, le=3600)
    #: scheduled runs: how often the store is looked at for runs falling due, and how many run
    #: at once (each a V2 execute); a 429 from Nexthink pauses them all for its Retry-After
    schedule_tick_seconds: float = Field(default=1.0, ge=0.05, le=60)
    schedule_concurrency: int = Field(default=4, ge=1, le=64)
    #: audit records older than this many days are deleted by the sweep; 0 keeps everything
    audit_retention_days: int = Field(default=400, ge=0, le=36500)

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url(cls, value: str) -> str:
        checked = _check_http_url(value, "SLACK_API_URL") or "https://slack.com/api/"
        return checked if checked.endswith("/") else checked + "/"

    @field_validator("nexthink_base_url", "nexthink_token_url")
    @classmethod
    def _nexthink_url(cls, value: str | None) -> str | None:
        checked = _check_http_url(value, "")
        return checked.rstrip("/") if checked else None

    @field_validator("nexthink_status_query_id", "nexthink_devices_query_id")
    @classmethod
    def _query_id(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not _QUERY_ID.match(value):
            raise ValueError(f"must look like #my_query (^#[a-z0-9_]{{2,255}}$), got {value!r}")
        return value

    @field_validator("nexthink_execute_api", mode="before")
    @classmethod
    def _execute_api(cls, value: object) -> object:
        if value is None or value == "":
            return "auto"
        if isinstance(value, str) and value.strip().lower() in {"auto", "v2", "v1"}:
            return value.strip().lower()
        raise ValueError(f"must be auto, v2 or v1, got {value!r}")

    @field_validator("log_format", "log_level", mode="before")
    @classmethod
    def _lower_upper(cls, value: object, info: object) -> object:
        if isinstance(value, str):
            if value == "":
                return None if getattr(info, "field_name", "") == "log_format" else "INFO"
            return (
                value.lower() if getattr(info, "field_name", "") == "log_format" else value.upper()
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].split("+", 1)[0]
        if scheme not in {"sqlite", "postgresql", "postgres"} or "://" not in value:
            raise ValueError(
                "must be sqlite:///path.db or postgresql://user@host/db, got " + _redact_url(value)
            )
        return value

    # -- derived values -------------------------------------------------------------------

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    @property
    def oauth(self) -> bool:
        """OAuth installs: SLACK_CLIENT_ID, SLACK_CLIENT_SECRET and SLACK_STATE_SECRET are set."""
        return not self._oauth_missing()

    @property
    def install_mode(self) -> InstallMode:
        if self.oauth:
            return "oauth"
        return "socket" if self.socket_mode else "token"

    def _oauth_given(self) -> dict[str, bool]:
        def given(value: str | SecretStr | None) -> bool:
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            return bool(value and value.strip())

        return {
            "SLACK_CLIENT_ID": given(self.slack_client_id),
            "SLACK_CLIENT_SECRET": given(self.slack_client_secret),
            "SLACK_STATE_SECRET": given(self.slack_state_secret),
        }

    def _oauth_missing(self) -> list[str]:
        return [name for name, given in self._oauth_given().items() if not given]

    @property
    def uses_sandbox(self) -> bool:
        return self.nexthink_base_url is None

    @property
    def token_url(self) -> str | None:
        if self.nexthink_token_url:
            return self.nexthink_token_url
        return derive_token_url(self.nexthink_base_url) if self.nexthink_base_url else None

    # -- loading and per-mode validation ---------------------------------------------------

    @classmethod
    def load(cls, mode: Mode = "serve", **overrides: object) -> Settings:
        """Read and validate the configuration for ``mode``; raise ``SettingsError`` if unusable."""
        try:
            settings = cls(**overrides)  # type: ignore[arg-type]
        except ValidationError as exc:
            raise SettingsError(_one_line(exc)) from None
        settings.check(mode)
        return settings

    def check(self, mode: Mode) -> None:
        if mode in {"sandbox", "audit"}:  # `audit` needs DATABASE_URL only
            return
        self._check_nexthink(required=mode in {"serve", "check"})
        self._check_oauth()
        if mode == "console":
            return
        if self.oauth:
            self._check_oauth_mode(mode)
            return
        token = self.slack_bot_token
        if token is None or not token.get_secret_value():
            raise SettingsError(
                "SLACK_BOT_TOKEN is required: the bot token (xoxb-...) of the Slack app"
            )
        if not token.get_secret_value().startswith("xoxb-"):
            raise SettingsError("SLACK_BOT_TOKEN must be a bot token starting with xoxb-")
        if mode != "serve":
            return
        if self.slack_app_token is not None:
            if not self.slack_app_token.get_secret_value().startswith("xapp-"):
                raise SettingsError(
                    "SLACK_APP_TOKEN must be an app-level token starting with xapp- (Socket Mode)"
                )
        elif self.slack_signing_secret is None or not self.slack_signing_secret.get_secret_value():
            raise SettingsError(
                "SLACK_SIGNING_SECRET is required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
            )

    def _check_oauth(self) -> None:
        """All of SLACK_CLIENT_ID, SLACK_CLIENT_SECRET, SLACK_STATE_SECRET or none; then a key."""
        missing = self._oauth_missing()
        if len(missing) == 3:
            return
        if missing:
            given = [name for name, is_given in self._oauth_given().items() if is_given]
            raise SettingsError(
                f"{_and(missing)} {'is' if len(missing) == 1 else 'are'} required with "
                f"{_and(given)} for OAuth installs (or unset {_and(given)} to serve one "
                "workspace or org with SLACK_BOT_TOKEN)"
            )
        from bot.store.token_cipher import KEY_HINT, TokenCipher  # cryptography, when needed

        key = self.slack_token_encryption_key
        if key is None or not key.get_secret_value().strip():
            raise SettingsError(
                "SLACK_TOKEN_ENCRYPTION_KEY is required with OAuth installs (SLACK_CLIENT_ID): "
                + KEY_HINT
            )
        try:
            TokenCipher.from_setting(key.get_secret_value())
        except ValueError as exc:
            raise SettingsError(str(exc)) from None

    def _check_oauth_mode(self, mode: Mode) -> None:
        if self.slack_app_token is not None:
            raise SettingsError(
                "SLACK_APP_TOKEN (Socket Mode) cannot be used with OAuth installs "
                "(SLACK_CLIENT_ID): Slack must reach /slack/oauth_redirect and /slack/events "
                "over HTTP; unset one or the other"
            )
        if self.slack_bot_token is not None and self.slack_bot_token.get_secret_value():
            raise SettingsError(
                "SLACK_BOT_TOKEN must not be set with OAuth installs (SLACK_CLIENT_ID): each "
                "installation brings its own token; unset one or the other"
            )
        secret = self.slack_signing_secret
        if mode == "serve" and (secret is None or not secret.get_secret_value()):
            raise SettingsError("SLACK_SIGNING_SECRET is required in HTTP mode (OAuth installs)")

    def _check_nexthink(self, *, required: bool) -> None:
        if self.nexthink_base_url is None:
            if required:
                raise SettingsError(
                    "NEXTHINK_BASE_URL is required, e.g. https://acme.api.eu.nexthink.cloud "
                    "(or run `nexthink-bot sandbox` and point it there)"
                )
            if self.nexthink_client_id or self.nexthink_client_secret:
                raise SettingsError("NEXTHINK_BASE_URL is required when NEXTHINK_CLIENT_ID is set")
            return
        if not self.nexthink_client_id:
            raise SettingsError("NEXTHINK_CLIENT_ID is required with NEXTHINK_BASE_URL")
        secret = self.nexthink_client_secret
        if secret is None or not secret.get_secret_value():
            raise SettingsError("NEXTHINK_CLIENT_SECRET is required with NEXTHINK_BASE_URL")

    def secrets(self) -> list[str]:
        """Every secret value configured, for the log redactor."""
        values = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.slack_client_secret,
            self.slack_state_secret,
            self.slack_token_encryption_key,
            self.nexthink_client_secret,
            self.nexthink_webhook_token,
        ]
        found = [v.get_secret_value() for v in values if v is not None and v.get_secret_value()]
        if self.slack_token_encryption_key is not None:  # each key of a comma-separated list too
            keys = self.slack_token_encryption_key.get_secret_value().split(",")
            found += [key.strip() for key in keys if key.strip()]
        return found


def _and(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _redact_url(url: str) -> str:
    return re.sub(r"://([^:/@]+):[^@/]*@", r"://\1:***@", url)


def _one_line(exc: ValidationError) -> str:
    error = exc.errors()[0]
    name = "_".join(str(p) for p in error.get("loc", ()) if p != "__root__").upper() or "SETTINGS"
    message = str(error.get("msg", "is invalid"))
    message = message.removeprefix("Value error, ")
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    return f"{name}: {message}{more}"
