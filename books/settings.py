"""Every setting, read from the environment once, with safe defaults.

Nothing else in the code reads ``os.environ``: the web app, the worker and the
tests all get their settings from ``Settings.from_env()``. A value the service cannot
use stops the process at start with one ``ConfigError`` line naming the variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from http.cookiejar import LoadError, MozillaCookieJar
from typing import Any
from urllib.parse import urlsplit


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
    # The origin's health, shared by the fleet (books/origin.py).
    origin_pause_after: int = 3
    origin_probe_intervals: tuple[int, ...] = (30, 60, 120, 300, 900)
    origin_pause_max: int = 24 * 3600
    robots_max_age: int = 24 * 3600
    # The operator's HTTP-client levers; kept out of repr so they never reach a log line.
    fetch_proxy: str = field(default="", repr=False)
    goodreads_cookies_file: str = field(default="", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from environment variables named like the fields, upper-cased."""
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for setting in fields(cls):
            raw = environ.get(setting.name.upper())
            if raw is None or raw.strip() == "":
                continue
            values[setting.name] = _convert(setting.name, setting.type, raw.strip())
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
        if not self.goodreads_base_url.startswith(("http://", "https://")):
            raise ConfigError("GOODREADS_BASE_URL must be an http(s) origin")
        if bool(self.rq_dashboard_username) != bool(self.rq_dashboard_password):
            raise ConfigError("set both RQ_DASHBOARD_USERNAME and RQ_DASHBOARD_PASSWORD, or neither")
        self._validate_origin_settings()

    def _validate_origin_settings(self) -> None:
        if self.origin_pause_after < 1:
            raise ConfigError("ORIGIN_PAUSE_AFTER must be 1 or more")
        if not self.origin_probe_intervals or any(interval < 1 for interval in self.origin_probe_intervals):
            raise ConfigError("ORIGIN_PROBE_INTERVALS must be one or more whole seconds, each 1 or more")
        if self.origin_pause_max < 0 or self.robots_max_age < 1:
            raise ConfigError("ORIGIN_PAUSE_MAX must not be negative and ROBOTS_MAX_AGE must be 1 or more")
        if self.fetch_proxy:
            proxy = urlsplit(self.fetch_proxy)
            if proxy.scheme not in ("http", "https") or not proxy.hostname:
                # The value may hold credentials: name the setting, never echo it.
                raise ConfigError("FETCH_PROXY must be an http:// or https:// proxy URL")
        if self.goodreads_cookies_file:
            load_cookies(self.goodreads_cookies_file)

    @property
    def origin(self) -> str:
        """The Goodreads origin pages are fetched from, without a trailing slash."""
        return self.goodreads_base_url.rstrip("/")

    @property
    def dashboard_auth_enabled(self) -> bool:
        return bool(self.rq_dashboard_username)


def load_cookies(path: str) -> MozillaCookieJar:
    """The Netscape cookies.txt at ``path``; ConfigError naming GOODREADS_COOKIES_FILE (and never
    a line of the file, which holds secrets) when it cannot be read."""
    jar = MozillaCookieJar(path)
    try:
        jar.load(ignore_discard=True, ignore_expires=True)
    except LoadError:
        raise ConfigError(f"GOODREADS_COOKIES_FILE={path!r} is not a Netscape cookies.txt file") from None
    except OSError as error:
        raise ConfigError(f"GOODREADS_COOKIES_FILE={path!r} cannot be read: {error.strerror}") from None
    return jar


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
