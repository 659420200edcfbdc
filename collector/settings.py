"""The one Settings object.

It is built once at an edge (the CLI, the API's app factory, the scheduler's start) and
passed down; nothing deeper reads the environment. Every variable has the prefix
``COLLECTOR_`` (``COLLECTOR_CENTRAL_URL``, ``COLLECTOR_DATABASE_URL``, ...). Secrets are
``SecretStr`` so that a stray ``print(settings)`` or log line shows ``**********``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from collector.private import warn_if_readable_by_others


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="COLLECTOR_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    # --- ODK Central -------------------------------------------------------------------
    central_url: str = Field(
        default="http://127.0.0.1:8383", description="Base URL of ODK Central, without /v1."
    )
    central_email: str = Field(default="admin@example.org", description="Central web user.")
    central_password: SecretStr = Field(default=SecretStr(""), description="Its password.")
    central_project_id: int = Field(
        default=1, ge=1, description="The Central project whose forms collector manages."
    )
    central_timeout: float = Field(default=60.0, gt=0, description="Seconds per HTTP call.")
    central_retries: int = Field(default=5, ge=0, description="Retries on 5xx/429/drops.")
    allow_insecure_transport: bool = Field(
        default=False,
        description="Allow http:// to a Central or enumerator server URL beyond this machine "
        "(passwords, tokens and answers in clear): a closed test network only.",
    )

    # --- where things live -------------------------------------------------------------
    data_dir: Path = Field(
        default=Path("data"), description="Token cache, attachments, SQLite file, locks."
    )
    database_url: SecretStr = Field(
        default=SecretStr(""),
        description="SQLAlchemy URL (may hold a password: secret); empty = SQLite in data_dir.",
    )
    forms_dir: Path = Field(default=Path("forms"), description="XLSForms and their manifest.")

    # --- sync ----------------------------------------------------------------------------
    sync_page_size: int = Field(
        default=5000,
        ge=1,
        le=100_000,
        description="OData $top per page: few pages (Central pays ~150 ms each), bounded memory.",
    )
    sync_writer: Literal["", "thread", "inline"] = Field(
        default="",
        description="Store pages in a thread of their own ('thread') or the reading one "
        "('inline'); '' = thread on PostgreSQL, inline on SQLite. For measuring.",
    )
    sync_overlap_seconds: int = Field(
        default=300, ge=0, description="Re-read this much before the watermark (central#1615)."
    )

    # --- scheduler (scheduler/) -----------------------------------------------------------
    scheduler_every_seconds: int = Field(
        default=0, ge=0, description="Sync every form this often; 0 keeps the manifest's schedule."
    )
    scheduler_lead_poll_seconds: float = Field(
        default=5.0, gt=0, description="How often a standby scheduler tries to take the lead."
    )
    scheduler_request_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often the leader looks for syncs asked through the API."
    )
    scheduler_misfire_grace_seconds: int = Field(
        default=300, ge=1, description="A run late by more than this is skipped, not run."
    )
    scheduler_retry_first_seconds: float = Field(
        default=30.0, gt=0, description="After a failed run, retry this soon (then 2x, 4x ...)."
    )
    scheduler_retry_max_seconds: float = Field(
        default=900.0, gt=0, description="Longest wait between retries of a failing form."
    )

    # --- enumerators (collector enumerators ..., Activity API) ----------------------------
    enumerator_server_url: str = Field(
        default="",
        description="Central's address as tablets reach it, for QR codes; empty = central_url.",
    )
    enumerator_app_language: str = Field(
        default="ru", description="Collect's interface language set by the QR code ('' = keep)."
    )
    enumerator_silent_hours: float = Field(
        default=48.0, gt=0, description="Activity flags an enumerator silent for longer than this."
    )

    # --- API ----------------------------------------------------------------------------
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=1, le=65535)
    api_max_page_size: int = Field(default=500, ge=1)
    api_rate_limit_per_minute: int = Field(default=600, ge=1)
    api_auth_failures_per_minute: int = Field(
        default=30,
        ge=1,
        description="Requests without a valid API key allowed per client address a minute; "
        "beyond that, 429 before the key is looked up.",
    )
    api_exports_per_key: int = Field(
        default=2,
        ge=1,
        description="Exports one API key may have running at once (per API process); "
        "beyond that, 429 with Retry-After.",
    )
    api_export_stall_seconds: float = Field(
        default=120.0,
        gt=0,
        description="An export whose client takes no bytes for this long is cut off.",
    )
    api_statement_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="The longest an API request's database statement may run "
        "(PostgreSQL statement_timeout; SQLite: a progress handler); then 503.",
    )
    api_pool_size: int = Field(
        default=10, ge=1, description="Database connections the API keeps (its own pool)."
    )
    api_pool_timeout_seconds: float = Field(
        default=3.0,
        gt=0,
        description="How long a request waits for a pooled connection before 503.",
    )
    api_max_filter_conditions: int = Field(
        default=20,
        ge=1,
        description="`where` conditions one request may combine (each costs a scan); "
        "beyond that, 422.",
    )
    api_max_body_bytes: int = Field(
        default=1_048_576,
        ge=1024,
        description="The largest request body read; larger ones get 413 before parsing.",
    )
    api_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="A client must send a request's headers within this (slowloris).",
    )
    api_body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A client must send a request's body within this once its headers came.",
    )
    api_trusted_proxies: str = Field(
        default="",
        description="Comma-separated addresses of reverse proxies whose X-Forwarded-For is "
        "believed (uvicorn's forwarded_allow_ips); empty: none, the peer's address counts.",
    )
    suppression_threshold: int = Field(
        default=5, ge=1, description="Indicator cells below this are hidden from non-managers."
    )
    indicator_rounding_base: int = Field(
        default=5,
        ge=1,
        description="Non-managers' people counts are rounded to this base (1: exact), so "
        "subtracting one query from another cannot recover a withheld cell.",
    )

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or the default SQLite file inside data_dir.

        A plain ``str`` holding the password, for ``create_engine`` and child processes'
        environments only: never log it (``sqlalchemy.make_url(...)`` hides it in repr)."""
        if url := self.database_url.get_secret_value():
            return url
        return f"sqlite:///{(self.data_dir / 'collector.db').resolve()}"

    @property
    def central_token_cache_path(self) -> Path:
        """Central's session token is cached here (with a fingerprint of the credentials it
        came from: collector.central.tokens), never in the user's home directory."""
        return self.data_dir / "central_token.json"

    @property
    def pyodk_cache_path(self) -> Path:
        """The token cache's earlier name (pyodk's cache file once lived here)."""
        return self.central_token_cache_path

    def model_post_init(self, context: Any, /) -> None:
        """The .env file read holds Central's password and the database URL (SEC-17)."""
        super().model_post_init(context)
        env_file = self.model_config.get("env_file")
        if isinstance(env_file, str | Path):
            warn_if_readable_by_others(Path(env_file), "passwords (COLLECTOR_* settings)")
