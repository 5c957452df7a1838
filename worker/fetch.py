"""Polite HTTP to Goodreads: only book pages, rate-limited, bounded in time and size.

The URL is always built here from a validated book id; a redirect is followed
only to another book page on the same origin. Anything else comes back as a
``AttemptFailed`` that says whether Goodreads blocked us or the fetch failed, or as
an ``OriginTrouble`` when the answer is about Goodreads itself rather than the book (a
bot challenge, a refusal, a request for a pause, no answer at all): books/origin.py
pauses the fleet on those.

The operator's levers are plain HTTP-client configuration: ``FETCH_PROXY`` and the
cookies of ``GOODREADS_COOKIES_FILE`` (worker/cookies.py); nothing else is taken from
the environment, and no request pretends to come from a browser.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import HTTPError, NameResolutionError, NewConnectionError, ReadTimeoutError

from books.links import BookId, Refusal, canonical_url, parse_book_path
from books.origin import OriginState
from books.settings import Settings
from books.status import BookStatus
from worker.parser import has_book_data, looks_like_sign_in
from worker.ratelimit import FetchRateLimiter

_CHUNK = 64 * 1024
_WAF_ACTION = "x-amzn-waf-action"
# The largest page taken for AWS WAF's challenge interstitial (one is a few KB; a book page,
# which loads the same script, some hundreds of KB).
_INTERSTITIAL_MAX = 64 * 1024


@dataclass(frozen=True)
class OriginResponse:
    status: int
    body: bytes
    retry_after: float | None
    url: str
    waf_action: str = ""


class OriginTrouble(Exception):
    """An answer about Goodreads itself, not about the book: what the origin did
    (``state``), in words, and the pause it asked for, if any."""

    def __init__(self, state: OriginState, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{state}: {reason}")
        self.state = state
        self.reason = reason
        self.retry_after = retry_after


class AttemptFailed(Exception):
    """This attempt at a book produced no record: Goodreads ``blocked`` us, or the fetch or
    the page ``failed``; ``retry_after`` is the pause the origin asked for, if any."""

    def __init__(self, status: BookStatus, reason: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


def new_session(settings: Settings) -> requests.Session:
    """A session that says who it is and takes no proxies or credentials from the environment:
    only ``FETCH_PROXY``, when set, for every request (book pages and robots.txt)."""
    session = requests.Session()
    session.headers.update(
        {
            "User-Agent": settings.user_agent,
            "Accept": "text/html,application/xhtml+xml",
            "Accept-Language": "en-US,en;q=0.8",
        }
    )
    session.trust_env = False  # no proxies or .netrc from the environment
    if settings.fetch_proxy:
        session.proxies = {"http": settings.fetch_proxy, "https": settings.fetch_proxy}
    return session


def fetch_book_page(
    book_id: BookId,
    settings: Settings,
    session: requests.Session,
    limiter: FetchRateLimiter,
    admit: Callable[[], None] = lambda: None,
) -> OriginResponse:
    """GET the book's page from the configured origin, following same-origin book redirects.
    ``admit()`` runs before each request takes its slot: it raises to hold the request back
    (the fleet paused meanwhile). It runs before the slot, not between the slot and the
    request, so that nothing but the request itself follows the slot (the rate stays exact)."""
    url = canonical_url(book_id, settings.origin)
    for _hop in range(settings.max_redirects + 1):
        response = fetch(url, settings, session, limiter, admit)
        with response:
            if not response.is_redirect:
                return read_answer(response, url, settings, settings.max_page_bytes)
            url = _allowed_redirect(url, response.headers.get("Location", ""), settings)
    raise AttemptFailed(BookStatus.FAILED, f"more than {settings.max_redirects} redirects")


def fetch(
    url: str,
    settings: Settings,
    session: requests.Session,
    limiter: FetchRateLimiter,
    admit: Callable[[], None],
    site: str = "Goodreads",
) -> requests.Response:
    """One rate-limited GET of an origin URL, not following redirects, its body left unread.
    No answer at all (no name, no connection, no proxy, nothing within the timeouts) is the
    origin's trouble; a connection lost mid-answer is this page's. ``site`` names the origin
    in the reasons."""
    admit()
    limiter.wait_for_slot()
    try:
        return session.get(
            url,
            allow_redirects=False,
            stream=True,
            timeout=(settings.fetch_connect_timeout, settings.fetch_read_timeout),
        )
    except requests.exceptions.ProxyError:
        raise OriginTrouble(OriginState.UNREACHABLE, f"{site} is unreachable: the proxy (FETCH_PROXY) failed") from None
    except requests.ConnectTimeout:
        raise OriginTrouble(OriginState.UNREACHABLE, f"{site} is unreachable: the connection timed out") from None
    except requests.Timeout:
        raise OriginTrouble(
            OriginState.UNREACHABLE, f"{site} is unreachable: no answer within {settings.fetch_read_timeout:g} s"
        ) from None
    except requests.ConnectionError as error:
        if _never_connected(error):
            raise OriginTrouble(
                OriginState.UNREACHABLE, f"{site} is unreachable: {_connection_failure(error)}"
            ) from None
        raise AttemptFailed(BookStatus.FAILED, f"connection to {site} failed: {type(error).__name__}") from None
    except requests.RequestException as error:
        raise AttemptFailed(BookStatus.FAILED, f"connection to {site} failed: {type(error).__name__}") from None


def _never_connected(error: requests.ConnectionError) -> bool:
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return isinstance(reason, NewConnectionError)


# What a name that does not resolve or a refused connection says: the trouble is on this side.
THIS_HOST = (
    "this host's network, not Goodreads: check this host's network or FETCH_PROXY; "
    "the demo origin runs without Goodreads"
)


def _connection_failure(error: requests.ConnectionError) -> str:
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    if isinstance(reason, NameResolutionError):
        return f"the name does not resolve (DNS), {THIS_HOST}"
    if "refused" in str(reason).lower():
        return f"connection refused, {THIS_HOST}"
    return "no connection could be made"


def origin_trouble(response: OriginResponse, site: str = "Goodreads") -> OriginTrouble | None:
    """The answer's trouble when it is about the origin (``site``) rather than this book: an AWS
    WAF challenge or CAPTCHA (HTTP 202, the ``x-amzn-waf-action`` header, a small interstitial
    loading the challenge script with no book in it), a refusal (401, 403), a request for a
    pause (429, 503 with Retry-After); None for anything else. A page with book data is a
    book, whatever scripts it loads."""
    status, action = response.status, response.waf_action
    challenge_page = _challenge_interstitial(response.body)
    if action == "captcha" or (challenge_page and b"captcha" in response.body.lower()):
        return OriginTrouble(OriginState.CHALLENGE, f"{site} answered HTTP {status} with a CAPTCHA challenge")
    if action or status == 202 or challenge_page:
        empty = "with an empty body " if not response.body.strip() else ""
        header = f", {_WAF_ACTION}: {action}" if action else ""
        page = ", a challenge page" if challenge_page else ""
        return OriginTrouble(
            OriginState.CHALLENGE, f"{site} answered HTTP {status} {empty}(a bot challenge{header}{page})"
        )
    if status in (401, 403):
        return OriginTrouble(OriginState.REFUSED, f"{site} refused the request (HTTP {status})")
    if status == 429 or (status == 503 and response.retry_after is not None):
        wait = f", Retry-After {response.retry_after:g} s" if response.retry_after is not None else ""
        return OriginTrouble(
            OriginState.RATE_LIMIT,
            f"{site} asked for a pause (HTTP {status}, rate limit{wait})",
            response.retry_after,
        )
    return None


def _challenge_interstitial(body: bytes) -> bool:
    """A small page loading AWS WAF's challenge or CAPTCHA script that holds no book and is no
    sign-in page: what the WAF serves instead of the page asked for."""
    if len(body) > _INTERSTITIAL_MAX:
        return False
    lowered = body.lower()
    loads_waf = b"awswaf" in lowered and (b"challenge.js" in lowered or b"captcha" in lowered)
    return loads_waf and not has_book_data(body) and not looks_like_sign_in(body)


def read_answer(
    response: requests.Response,
    url: str,
    settings: Settings,
    max_bytes: int,
    truncate: bool = False,
    site: str = "Goodreads",
) -> OriginResponse:
    """The origin's answer with its body read within the read deadline (``_read_capped``) and
    its ``Retry-After`` capped at ``ORIGIN_WAIT_MAX``: for book pages and robots.txt alike."""
    return OriginResponse(
        response.status_code,
        _read_capped(response, settings, site, max_bytes, truncate),
        parse_retry_after(response.headers.get("Retry-After"), settings.origin_wait_max),
        url,
        response.headers.get(_WAF_ACTION, "").strip().lower(),
    )


def _read_capped(response: requests.Response, settings: Settings, site: str, max_bytes: int, truncate: bool) -> bytes:
    """The body, within ``FETCH_CONNECT_TIMEOUT`` + ``FETCH_READ_TIMEOUT`` in all: a body that
    trickles (each byte within the read timeout) is refused at that deadline, give or take one
    read timeout. Read as it comes (``read1``): a full-sized read would wait for its whole
    size, a day at a byte a second, before the deadline could be looked at. A body over
    ``max_bytes`` is refused, or cut there when ``truncate``; ``site`` names the origin in the
    reasons."""
    deadline = time.monotonic() + settings.fetch_connect_timeout + settings.fetch_read_timeout
    declared = response.headers.get("Content-Length", "")
    if not truncate and declared.isdigit() and int(declared) > max_bytes:
        raise AttemptFailed(BookStatus.FAILED, f"the page is larger than {max_bytes} bytes")
    chunks, size = [], 0
    try:
        while chunk := response.raw.read1(_CHUNK, decode_content=True):
            if time.monotonic() > deadline:
                raise AttemptFailed(BookStatus.FAILED, f"{site} sent the page too slowly")
            chunks.append(chunk)
            size += len(chunk)
            if size > max_bytes:
                if truncate:
                    return b"".join(chunks)[:max_bytes]
                raise AttemptFailed(BookStatus.FAILED, f"the page is larger than {max_bytes} bytes")
    except ReadTimeoutError:
        raise AttemptFailed(BookStatus.FAILED, f"{site} stopped sending the page (read timeout)") from None
    except (HTTPError, OSError) as error:
        raise AttemptFailed(BookStatus.FAILED, f"the page was cut off: {type(error).__name__}") from None
    return b"".join(chunks)


def _allowed_redirect(current: str, location: str, settings: Settings) -> str:
    target = urljoin(current, location)
    parts, origin = urlsplit(target), urlsplit(settings.origin)
    if (parts.scheme, parts.netloc) != (origin.scheme, origin.netloc):
        raise AttemptFailed(BookStatus.BLOCKED, f"Goodreads redirected to another host ({parts.netloc or 'none'})")
    if isinstance(parse_book_path(parts.path), Refusal):
        raise AttemptFailed(BookStatus.BLOCKED, f"Goodreads redirected to {parts.path!r}, not a book page")
    return f"{settings.origin}{parts.path}"


def parse_retry_after(value: str | None, most: float) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), at most ``most``
    (``ORIGIN_WAIT_MAX``: one answer asking for years must not hold the fleet that long);
    None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), most)
    try:
        return min(max(0.0, parsedate_to_datetime(value).timestamp() - time.time()), most)
    except (TypeError, ValueError):
        return None
