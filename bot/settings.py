"""Every setting the bot reads, its environment variable and its default (also read from an optional .env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from typing import Annotated

from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.content.paths import default_content_dir


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    bot_token: SecretStr | None = Field(default=None, alias="BOT_TOKEN", description="Telegram bot token from @BotFather (only `hubbot run` needs it)")
    telegram_api_base: str = Field(default="https://api.telegram.org", alias="TELEGRAM_API_BASE", description="Bot API server base URL")
    db: str = Field(default="hubbot.sqlite3", alias="HUBBOT_DB", description="SQLite file path (or a postgresql:// URL in the scale-out mode)")
    content: Path = Field(default_factory=default_content_dir, alias="HUBBOT_CONTENT", description="Directory holding resources.yaml and intents/")
    default_region: str = Field(default="US", alias="HUBBOT_DEFAULT_REGION", description="Region for crisis lines until the user picks one")
    hash_key: SecretStr | None = Field(default=None, alias="HUBBOT_HASH_KEY", description="HMAC key for user ids; generated and stored beside the database when unset")
    admin_ids: Annotated[list[int], NoDecode] = Field(default_factory=list, alias="HUBBOT_ADMIN_IDS", description="Telegram user ids allowed /stats and /reload (comma-separated)")
    log_level: str = Field(default="INFO", alias="HUBBOT_LOG_LEVEL")
    listen: str = Field(default="127.0.0.1:8080", alias="HUBBOT_LISTEN", description="HOST:PORT of the HTTP listener (/healthz, /metrics, webhook)")
    webhook_url: str | None = Field(default=None, alias="HUBBOT_WEBHOOK_URL", description="Public HTTPS URL Telegram posts updates to (webhook mode)")
    webhook_secret: SecretStr | None = Field(default=None, alias="HUBBOT_WEBHOOK_SECRET", description="Secret token Telegram sends with each webhook request")
    event_retention_days: int = Field(default=90, alias="HUBBOT_EVENT_RETENTION_DAYS", ge=1)
    referral_retention_days: int = Field(default=30, alias="HUBBOT_REFERRAL_RETENTION_DAYS", ge=1)
    debug_text: bool = Field(default=False, alias="HUBBOT_DEBUG_TEXT", description="Log and store message text (never in production)")
    redis_url: SecretStr | None = Field(
        default=None,
        alias="HUBBOT_REDIS_URL",
        description="redis:// URL of the Redis shared by several replicas (webhook mode): per-chat locks, update "
        "dedup, flood control and content-reload notices live there; unset keeps them in this process",
    )
    redis_prefix: str = Field(
        default="hubbot",
        alias="HUBBOT_REDIS_PREFIX",
        min_length=1,
        pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Prefix of every Redis key and channel, so several bots (or test runs) can share one Redis",
    )

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(" ", "").split(",") if part]
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("default_region")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @property
    def db_path(self) -> Path:
        return Path(self.db)
