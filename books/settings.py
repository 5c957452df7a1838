"""Every setting, read from the environment once, with safe defaults.

Nothing else in the code reads ``os.environ``: the web app, the worker and the
tests all get their settings from ``Settings.from_env()``. A value the service cannot
use raises ``ConfigError`` naming the variable; the processes check their settings as
they start (``stop_on_config_error``), so such a value stops them with that one line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace
from http.cookiejar import LoadError, MozillaCookieJar
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

# Where a record may come from when Goodreads says no; "none" turns the second source off.
FALLBACK_SOURCES = ("openlibrary", "none")
# An address that can go into a header: no spaces, no control characters, one @.
_EMAIL = re.compile(r"[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s\x00-\x1f\x7f]+")


class ConfigError(ValueError):
    """An environment variable holds a value the service cannot use."""


# The ports a CALLBACK_ALLOWED_HOSTS entry without one allows.
DEFAULT_CALLBACK_PORTS = (80, 443)


@dataclass(frozen=True)
class Settings:
    # The Redis server; with REDIS_SENTINELS set, its database, credentials and TLS (redis:// or
    # rediss://) for the master the sentinels name. Kept out of repr: it may hold a password.
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    # Redis Sentinel: comma-separated host:port addresses of the sentinels, the master's name, and
    # the sentinels' own password (requirepass of the sentinels), if they ask for one.
    redis_sentinels: str = ""
    redis_sentinel_master: str = ""
    redis_sentinel_password: str = field(default="", repr=False)
    # Replicas that must hold a POST's jobs before it is answered 202 (0: none waited for).
    redis_min_replicas: int = 0
    queue_name: str = "bookInfoParser"
    key_prefix: str = "goodreads"
    goodreads_base_url: str = "https://www.goodreads.com"
    refresh_after: int = 7 * 24 * 3600
    max_links_per_request: int = 10_000
    max_request_bytes: int = 8 * 1024 * 1024
    fetch_rate: float = 1.0
    # The longest a job sleeps for its request slot; a job whose slot is further away is put
    # aside (RQ's scheduler) without spending an attempt. At most a quarter of JOB_TIMEOUT; left
    # unset, 5 s or that quarter if less (DERIVED_DEFAULTS).
    fetch_wait_max: float = 5.0
    fetch_connect_timeout: float = 5.0
    fetch_read_timeout: float = 20.0
    max_page_bytes: int = 5 * 1024 * 1024
    max_redirects: int = 3
    user_agent: str = "goodreads-book-info/1.0 (+https://github.com/goodreads-book-info)"
    retry_max: int = 4
    retry_intervals: tuple[int, ...] = (15, 60, 300, 900)
    job_timeout: int = 120
    # Seconds RQ keeps a finished book job and its result; 0: deleted at once (the record is the result).
    result_ttl: int = 0
    failure_ttl: int = 7 * 24 * 3600
    redis_socket_timeout: float = 3.0
    batch_ttl: int = 7 * 24 * 3600
    # Links per page of GET /batches/<id>: the default page and the largest ?limit=.
    batch_page_size: int = 1000
    # Batches of at most this many distinct books are counted afresh on every GET /batches/<id>;
    # larger ones answer with their last counts, recounted by a worker (books/batches.py).
    batch_inline_count_books: int = 50_000
    record_cache_size: int = 10_000
    rq_dashboard_username: str = ""
    rq_dashboard_password: str = field(default="", repr=False)
    # Callbacks: off unless hosts are listed (comma-separated host or host:port, matched exactly).
    callback_allowed_hosts: str = ""
    callback_secret: str = field(default="", repr=False)
    # Seconds a delivery may take in all, however slowly the receiver answers.
    callback_timeout: float = 10.0
    # Deliveries to one host:port at once, across every worker; others wait their turn.
    callback_host_concurrency: int = 2
    # Seconds between delivery attempts after a failure; the default adds up to under 3 hours.
    callback_retry_intervals: tuple[int, ...] = (10, 30, 60, 300, 900, 1800, 3600, 3600)
    # Seconds between checks of the batches waiting for a callback.
    callback_check_interval: int = 10
    # Refresh: every REFRESH_EVERY seconds (0: off) queue at most REFRESH_BATCH books whose record is
    # older than REFRESH_AFTER, on a queue workers serve only when the main queue is empty.
    refresh_every: int = 0
    refresh_batch: int = 100
    # Limits of the web side against abuse (app/limits.py), and who a client is.
    post_budget: int = 600
    # Seconds a request's whole body may take to arrive, however it trickles (then 408).
    request_body_timeout: float = 10.0
    # Connections one client address may hold open at once in each web process (0: no cap);
    # the trusted proxies' own addresses are not capped.
    max_client_connections: int = 100
    # Exports (GET /books, /batches/<id>/books) streamed at once by each web process (0: no cap).
    max_exports: int = 2
    # A POST body larger than this (or of unknown length) is parsed one at a time per client.
    large_post_bytes: int = 256 * 1024
    post_budget_window: int = 60
    max_queued_books: int = 1_000_000
    # Books one client may have waiting at once (0: no share of MAX_QUEUED_BOOKS).
    client_queued_books: int = 50_000
    # Bytes of batch data (links, reasons, book ids) kept for BATCH_TTL, per client and in all (0: no bound).
    client_batch_bytes: int = 16 * 1024 * 1024
    max_batch_bytes: int = 128 * 1024 * 1024
    api_tokens: tuple[str, ...] = field(default=(), repr=False)
    trusted_proxy_hops: int = 0
    # The proxies' own addresses or networks (CIDR): forwarded headers are trusted from these only.
    trusted_proxy_addresses: tuple[str, ...] = ()
    dashboard_login_failures: int = 5
    dashboard_lockout_max: int = 300
    # Wrong dashboard passwords per minute from all clients together (0: no such budget); past
    # it, only browsers known from an earlier login have their password checked till the minute ends.
    dashboard_global_failures: int = 100
    # Seconds a browser that logged in stays known (a signed cookie): its password is checked
    # even while its address, or the whole dashboard, is locked out.
    dashboard_operator_ttl: int = 30 * 24 * 3600
    # Records: what a stored record may hold, checked when it is written and when it is read.
    max_record_bytes: int = 1024 * 1024
    max_record_depth: int = 16
    # The web process's record cache: at most this many bytes of bodies (and RECORD_CACHE_SIZE bodies).
    record_cache_bytes: int = 64 * 1024 * 1024
    # Workers: heartbeat, patience with Redis, and restarts by ``python -m worker.supervisor``.
    worker_ttl: int = 60
    worker_redis_backoff_max: float = 10.0
    worker_restart_delay_max: float = 30.0
    # false: a worker runs each job in its own process instead of a forked work horse (faster;
    # gives up the horse's isolation: docs/operations.md, Workers).
    worker_fork: bool = True
    # false: the worker's main process builds nothing lazily built ahead of its work horses
    # (worker/warmup.py), as before; for measuring what that saves.
    worker_warm_up: bool = True
    # The origin's health, shared by the fleet (books/origin.py).
    origin_pause_after: int = 3
    origin_probe_intervals: tuple[int, ...] = (30, 60, 120, 300, 900)
    origin_pause_max: int = 24 * 3600
    robots_max_age: int = 24 * 3600
    # The longest wait the origin may impose (Retry-After, robots.txt's Crawl-delay): one odd
    # answer must not hold the fleet for days.
    origin_wait_max: int = 3600
    # The operator's HTTP-client levers; kept out of repr so they never reach a log line.
    fetch_proxy: str = field(default="", repr=False)
    goodreads_cookies_file: str = field(default="", repr=False)
    # The second source: where a record comes from when Goodreads says no (``none``: nowhere),
    # Open Library's origin and request rate (shared by the fleet), and the contact its
    # User-Agent names, as Open Library asks of API clients.
    fallback_source: str = "openlibrary"
    openlibrary_base_url: str = "https://openlibrary.org"
    openlibrary_rate: float = 1.0
    contact_email: str = ""

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
        # A setting left unset follows the ones it depends on; only a value the operator set is refused.
        derived = {name: default(settings) for name, default in DERIVED_DEFAULTS.items() if name not in values}
        settings = replace(settings, **derived)
        settings.validate()
        return settings

    def validate(self) -> None:
        """Refuse values the service cannot work with, naming the variable."""
        self._validate_redis()
        if self.fetch_rate < 0:
            raise ConfigError("FETCH_RATE must be 0 (no limit) or more")
        if not 0 <= self.fetch_wait_max <= self.job_timeout / 4:
            raise ConfigError("FETCH_WAIT_MAX must be 0 or more and at most a quarter of JOB_TIMEOUT")
        if self.retry_max < 0 or any(interval < 0 for interval in self.retry_intervals):
            raise ConfigError("RETRY_MAX and RETRY_INTERVALS must not be negative")
        if self.max_links_per_request < 1 or self.max_request_bytes < 1:
            raise ConfigError("MAX_LINKS_PER_REQUEST and MAX_REQUEST_BYTES must be positive")
        if self.batch_page_size < 1:
            raise ConfigError("BATCH_PAGE_SIZE must be positive")
        if self.batch_inline_count_books < 0:
            raise ConfigError("BATCH_INLINE_COUNT_BOOKS must be 0 (every batch counted by a worker) or more")
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
        if self.callback_hosts and not self.callback_secret:
            raise ConfigError("CALLBACK_SECRET must be set when CALLBACK_ALLOWED_HOSTS is (callbacks are signed)")
        if self.callback_timeout <= 0 or self.callback_check_interval < 1 or self.callback_host_concurrency < 1:
            raise ConfigError(
                "CALLBACK_TIMEOUT, CALLBACK_CHECK_INTERVAL and CALLBACK_HOST_CONCURRENCY must be positive"
            )
        if any(interval < 0 for interval in self.callback_retry_intervals):
            raise ConfigError("CALLBACK_RETRY_INTERVALS must not be negative")
        if self.refresh_every < 0 or self.refresh_batch < 1 or self.refresh_after < 0:
            raise ConfigError("REFRESH_EVERY (0: off) and REFRESH_AFTER must not be negative, REFRESH_BATCH positive")
        if self.redis_min_replicas < 0:
            raise ConfigError("REDIS_MIN_REPLICAS must be 0 (none waited for) or more")
        if self.post_budget < 0 or self.post_budget_window < 1:
            raise ConfigError("POST_BUDGET must be 0 (no limit) or more, POST_BUDGET_WINDOW at least 1")
        if self.max_exports < 0 or self.large_post_bytes < 1:
            raise ConfigError("MAX_EXPORTS must be 0 (no cap) or more, LARGE_POST_BYTES positive")
        if self.request_body_timeout <= 0 or self.max_client_connections < 0:
            raise ConfigError("REQUEST_BODY_TIMEOUT must be positive, MAX_CLIENT_CONNECTIONS 0 (no cap) or more")
        if self.max_queued_books < 0 or self.client_queued_books < 0:
            raise ConfigError("MAX_QUEUED_BOOKS and CLIENT_QUEUED_BOOKS must be 0 (no bound) or more")
        if self.client_batch_bytes < 0 or self.max_batch_bytes < 0:
            raise ConfigError("CLIENT_BATCH_BYTES and MAX_BATCH_BYTES must be 0 (no bound) or more")
        if self.trusted_proxy_hops < 0:
            raise ConfigError("TRUSTED_PROXY_HOPS must be 0 (no proxy) or more")
        if bool(self.trusted_proxy_hops) != bool(self.trusted_proxy_networks):
            raise ConfigError(
                "set both TRUSTED_PROXY_HOPS and TRUSTED_PROXY_ADDRESSES (the proxies' addresses), or neither"
            )
        if self.dashboard_login_failures < 0 or self.dashboard_lockout_max < 1:
            raise ConfigError("DASHBOARD_LOGIN_FAILURES must be 0 or more, DASHBOARD_LOCKOUT_MAX at least 1")
        if self.dashboard_global_failures < 0 or self.dashboard_operator_ttl < 1:
            raise ConfigError(
                "DASHBOARD_GLOBAL_FAILURES must be 0 (no budget) or more, DASHBOARD_OPERATOR_TTL at least 1"
            )
        if any(not token.isprintable() or " " in token for token in self.api_tokens):
            raise ConfigError("API_TOKENS must be comma-separated tokens without spaces")
        if self.origin_pause_after < 1:
            raise ConfigError("ORIGIN_PAUSE_AFTER must be 1 or more")
        if not self.origin_probe_intervals or any(interval < 1 for interval in self.origin_probe_intervals):
            raise ConfigError("ORIGIN_PROBE_INTERVALS must be one or more whole seconds, each 1 or more")
        if self.origin_pause_max < 0 or self.robots_max_age < 1:
            raise ConfigError("ORIGIN_PAUSE_MAX must not be negative and ROBOTS_MAX_AGE must be 1 or more")
        if self.origin_wait_max < 1:
            raise ConfigError("ORIGIN_WAIT_MAX must be 1 or more (seconds)")
        if self.fetch_proxy:
            proxy = urlsplit(self.fetch_proxy)
            if proxy.scheme not in ("http", "https") or not proxy.hostname:
                # The value may hold credentials: name the setting, never echo it.
                raise ConfigError("FETCH_PROXY must be an http:// or https:// proxy URL")
        if self.goodreads_cookies_file:
            load_cookies(self.goodreads_cookies_file)
        self._validate_fallback()

    def _validate_fallback(self) -> None:
        if self.fallback_source not in FALLBACK_SOURCES:
            raise ConfigError(f"FALLBACK_SOURCE must be one of {', '.join(FALLBACK_SOURCES)}")
        if not self.openlibrary_base_url.startswith(("http://", "https://")):
            raise ConfigError("OPENLIBRARY_BASE_URL must be an http(s) origin")
        if self.openlibrary_rate < 0:
            raise ConfigError("OPENLIBRARY_RATE must be 0 (no limit) or more")
        if self.contact_email and not _EMAIL.fullmatch(self.contact_email):
            raise ConfigError("CONTACT_EMAIL must be one e-mail address (name@host), or unset")

    def _validate_redis(self) -> None:
        # REDIS_URL may hold a password: the errors name the settings, never echo the URL.
        if not self.redis_url.startswith(("redis://", "rediss://", "unix://")):
            raise ConfigError("REDIS_URL must be a redis://, rediss:// or unix:// URL")
        if not self.redis_sentinels:
            if self.redis_sentinel_master or self.redis_sentinel_password:
                raise ConfigError("REDIS_SENTINEL_MASTER and REDIS_SENTINEL_PASSWORD need REDIS_SENTINELS")
            return
        if not self.sentinel_addresses:  # ConfigError already for an address that is not host:port
            raise ConfigError("REDIS_SENTINELS must list host:port addresses, comma-separated")
        if not self.redis_sentinel_master:
            raise ConfigError("REDIS_SENTINELS needs REDIS_SENTINEL_MASTER (the name the sentinels monitor)")
        if self.redis_url.startswith("unix://"):
            raise ConfigError("REDIS_URL must be redis:// or rediss:// with REDIS_SENTINELS (the master is on TCP)")

    @property
    def sentinel_addresses(self) -> list[tuple[str, int]]:
        """REDIS_SENTINELS as (host, port) pairs; empty: no Sentinel, REDIS_URL names the server."""
        return [_host_port(part.strip()) for part in self.redis_sentinels.split(",") if part.strip()]

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        """TRUSTED_PROXY_ADDRESSES as networks (an address alone is a network of one)."""
        try:
            return tuple(ip_network(address, strict=False) for address in self.trusted_proxy_addresses)
        except ValueError:
            raise ConfigError(
                "TRUSTED_PROXY_ADDRESSES must list IP addresses or networks (CIDR), comma-separated"
            ) from None

    @property
    def origin(self) -> str:
        """The Goodreads origin pages are fetched from, without a trailing slash."""
        return self.goodreads_base_url.rstrip("/")

    @property
    def openlibrary_origin(self) -> str:
        """Open Library's origin, without a trailing slash."""
        return self.openlibrary_base_url.rstrip("/")

    @property
    def openlibrary_user_agent(self) -> str:
        """The User-Agent of requests to Open Library: the service's, with the contact it asks for."""
        return f"{self.user_agent} (contact: {self.contact_email})" if self.contact_email else self.user_agent

    @property
    def dashboard_auth_enabled(self) -> bool:
        return bool(self.rq_dashboard_username)

    @property
    def callback_hosts(self) -> frozenset[tuple[str, int]]:
        """The (host, port) pairs a callback may be sent to, an entry without a port standing for
        ports 80 and 443; empty: callbacks are off."""
        allowed: set[tuple[str, int]] = set()
        for entry in self.callback_allowed_hosts.split(","):
            if entry.strip():
                try:
                    host, port = _split_address(entry.strip().lower())
                except ConfigError as error:
                    raise ConfigError(f"CALLBACK_ALLOWED_HOSTS: {error} (e.g. hooks.example.com:8443)") from None
                allowed.update((host, each) for each in ((port,) if port else DEFAULT_CALLBACK_PORTS))
        return frozenset(allowed)

    @property
    def redis_addresses(self) -> frozenset[tuple[str, int]]:
        """Where this service's Redis listens (the server, or its sentinels): never a callback's target."""
        addresses = set(self.sentinel_addresses)
        if not self.redis_url.startswith("unix://"):
            url = urlsplit(self.redis_url)
            addresses.add(((url.hostname or "localhost").lower(), url.port or 6379))
        return frozenset(addresses)

    @property
    def control_queue_name(self) -> str:
        """The queue of the service's own short jobs (callback checks, batch recounts, refresh
        rounds), served before the book queue so a backlog of books never delays them."""
        return f"{self.queue_name}-control"

    @property
    def callback_queue_name(self) -> str:
        """The queue of callback deliveries, served after the book queue: a client's receivers,
        however many and however slow, never hold users' books back."""
        return f"{self.queue_name}-callbacks"

    @property
    def refresh_queue_name(self) -> str:
        """The queue of refresh jobs, served only when the book queue is empty."""
        return f"{self.queue_name}-refresh"

    @property
    def worker_queues(self) -> list[str]:
        """The queues a worker serves, in priority order."""
        return [self.control_queue_name, self.queue_name, self.callback_queue_name, self.refresh_queue_name]


# The defaults that depend on other settings, each made from the settings as read; used only when
# the variable is unset, so moving one setting never makes another's default refused.
DERIVED_DEFAULTS: dict[str, Callable[[Settings], Any]] = {
    "fetch_wait_max": lambda settings: min(Settings.fetch_wait_max, settings.job_timeout / 4),
}


@contextmanager
def stop_on_config_error() -> Iterator[None]:
    """Turn a ``ConfigError`` into the process's exit with one line (status 1): a setting to
    fix needs no traceback, and honcho would otherwise print about ninety lines of it."""
    try:
        yield
    except ConfigError as error:
        raise SystemExit(f"configuration error: {error}{where_set(str(error))}") from None


def where_set(message: str, environ: Mapping[str, str] | None = None, dotenv: Path = Path(".env")) -> str:
    """Where the variables ``message`` names got their values, so the operator fixes the right
    place: ``.env`` (which honcho and docker compose read) only when it holds that same value,
    else the environment (a shell's export, a container's settings); nothing for a variable
    left unset."""
    environ = os.environ if environ is None else environ
    named = [
        name for name in (setting.name.upper() for setting in fields(Settings)) if re.search(rf"\b{name}\b", message)
    ]
    set_here = [name for name in named if environ.get(name, "").strip()]
    if not set_here:
        return ""
    in_file = _dotenv_values(dotenv)
    from_file = [name for name in set_here if in_file.get(name) == environ[name]]
    from_environment = [name for name in set_here if name not in from_file]
    sources = []
    if from_file:
        sources.append(f"{', '.join(from_file)} set in .env, which honcho and docker compose read")
    if from_environment:
        sources.append(f"{', '.join(from_environment)} set in the environment")
    return f" ({'; '.join(sources)})"


def _dotenv_values(path: Path) -> dict[str, str]:
    """The ``NAME=value`` lines of a ``.env`` file (none when there is no such file)."""
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {}
    values = {}
    for line in lines:
        name, equals, value = line.strip().removeprefix("export ").partition("=")
        if equals and not name.startswith("#"):
            values[name.strip()] = value.strip().strip("'\"")
    return values


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


def _host_port(address: str) -> tuple[str, int]:
    try:
        host, port = _split_address(address)
    except ConfigError:
        port = None
    if port is None:
        raise ConfigError(f"REDIS_SENTINELS={address!r} is not a host:port address (e.g. 10.0.0.5:26379)")
    return host, port


def _split_address(address: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` (a bare IPv6 address has no port) as
    (host, port or None); ValueError naming the address when it is none of them."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":") if rest.startswith(":") else None
        if rest and port is None:
            host = ""
    elif address.count(":") == 1:
        host, port = address.split(":")
    else:
        host, port = address, None
        if ":" in host and not _is_ip(host):
            host = ""
    if not host or any(c.isspace() for c in host) or (port is not None and not _valid_port(port)):
        raise ConfigError(f"{address!r} is not a host or host:port address")
    return host, int(port) if port is not None else None


def _is_ip(host: str) -> bool:
    try:
        ip_address(host)
    except ValueError:
        return False
    return True


def _valid_port(port: str) -> bool:
    return port.isdigit() and 0 < int(port) < 65536


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _convert(name: str, kind: Any, raw: str) -> Any:
    if kind in ("bool", bool):
        if raw.lower() not in _BOOLEANS:
            raise ConfigError(f"{name.upper()}={raw!r} must be true or false")
        return _BOOLEANS[raw.lower()]
    try:
        if kind in ("int", int):
            return int(raw)
        if kind in ("float", float):
            return float(raw)
        if kind == "tuple[int, ...]":
            return tuple(int(part) for part in raw.split(",") if part.strip())
        if kind == "tuple[str, ...]":
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"{name.upper()}={raw!r} is not a valid {kind}") from None
    return raw
