"""Every setting, read from the environment once, with safe defaults.

Nothing else in the code reads ``os.environ``: the web app, the worker and the
tests all get their settings from ``Settings.from_env()``. A value the service cannot
use stops the process at start with one ``ConfigError`` line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


@dataclass(frozen=True)
class Settings:
    redis_url: str = "redis://127.0.0.1:6379/0"
    queue_name: str = "bookInfoParser"
    key_prefix: str = "goodreads"
    goodreads_base_url: str = "https://www.goodreads.com"
    refresh_after: int = 7 * 24 * 3600
    max_links_per_request: int = 10_000
    max_request_bytes: int = 8 * 1024 * 1024
    fetch_rate: float = 1.0
    fetch_connect_timeout: float = 5.0
    fetch_read_timeout: float = 20.0
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 3
    user_agent: str = "goodreads-book-info/1.0 (+https://github.com/goodreads-book-info)"
    retry_max: int = 4
    retry_intervals: tuple[int, ...] = (15, 60, 300, 900)
    job_timeout: int = 120
    result_ttl: int = 3600
    failure_ttl: int = 7 * 24 * 3600
    redis_socket_timeout: float = 3.0
    batch_ttl: int = 7 * 24 * 3600
    record_cache_size: int = 10_000
    rq_dashboard_username: str = ""
    rq_dashboard_password: str = ""
    # Records: what a stored record may hold, checked when it is written and when it is read.
    max_record_bytes: int = 1024 * 1024
    max_record_depth: int = 16
    # The web process's record cache: at most this many bytes of bodies (and RECORD_CACHE_SIZE bodies).
    record_cache_bytes: int = 64 * 1024 * 1024
    # Workers: heartbeat, patience with Redis, and restarts by ``python -m worker.supervisor``.
    worker_ttl: int = 60
    worker_redis_backoff_max: float = 10.0
    worker_restart_delay_max: float = 30.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from environment variables named like the fields, upper-cased."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = environ.get(field.name.upper())
            if raw is None or raw.strip() == "":
                continue
            values[field.name] = _convert(field.name, field.type, raw.strip())
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse values the service cannot work with, naming the variable."""
        if self.fetch_rate < 0:
            raise ConfigError("FETCH_RATE must be 0 (no limit) or more")
        if self.retry_max < 0 or any(interval < 0 for interval in self.retry_intervals):
            raise ConfigError("RETRY_MAX and RETRY_INTERVALS must not be negative")
        if self.max_links_per_request < 1 or self.max_request_bytes < 1:
            raise ConfigError("MAX_LINKS_PER_REQUEST and MAX_REQUEST_BYTES must be positive")
        if self.record_cache_size < 0:
            raise ConfigError("RECORD_CACHE_SIZE must be 0 (no cache) or more")
        if self.max_record_bytes < 1 or self.max_record_depth < 1:
            raise ConfigError("MAX_RECORD_BYTES and MAX_RECORD_DEPTH must be positive")
        if self.record_cache_bytes < 0:
            raise ConfigError("RECORD_CACHE_BYTES must be 0 (no cache) or more")
        if self.worker_ttl < 20:
            raise ConfigError("WORKER_TTL must be at least 20 (seconds; a worker heartbeats every WORKER_TTL - 15)")
        if self.worker_redis_backoff_max <= 0 or self.worker_restart_delay_max <= 0:
            raise ConfigError("WORKER_REDIS_BACKOFF_MAX and WORKER_RESTART_DELAY_MAX must be positive")
        if not self.goodreads_base_url.startswith(("http://", "https://")):
            raise ConfigError("GOODREADS_BASE_URL must be an http(s) origin")
        if bool(self.rq_dashboard_username) != bool(self.rq_dashboard_password):
            raise ConfigError("set both RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD, or neither")

    @property
    def origin(self) -> str:
        """The Goodreads origin pages are fetched from, without a trailing slash."""
        return self.goodreads_base_url.rstrip("/")

    @property
    def dashboard_auth_enabled(self) -> bool:
        return bool(self.rq_dashboard_username)


def _convert(name: str, kind: Any, raw: str) -> Any:
    try:
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
        if kind == "tuple[int, ...]":
            return tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw
