"""One careful HTTP client for the exchange programs.

- Bounded answers (``max_bytes``), no redirects, and only ever the program's own scheme and host:
  a paging link that points elsewhere is refused, so credentials never leave for another host.
- GETs are retried on 429 and 5xx (and on connection errors) with back-off, honouring
  ``Retry-After`` (seconds or an HTTP date, capped); POST/PUT are not retried here: the outbox
  retries them later (:class:`RetryLater` carries the wait the program asked for).
- Errors name the program and the HTTP status only: never a URL (paging links may carry an access
  token), a header or a response body (which could echo what was sent).
"""

from __future__ import annotations

import email.utils
import time
from typing import Any, Callable
from urllib.parse import urlsplit

import httpx

from consentry import __version__
from consentry.exchanges.base import ExchangeError

RETRY_STATUSES = {429, 500, 502, 503, 504}


class RetryLater(ExchangeError):
    """The program is busy or failing (429/5xx, unreachable): try again after ``retry_after`` s."""

    code = "exchange_retry_later"

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class Refused(ExchangeError):
    """The program refused the credentials (401/403)."""

    code = "exchange_refused"


class HttpStatus(ExchangeError):
    """Any other 4xx answer (bad request, expired page token, unknown entry)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def retry_after_seconds(value: str | None, cap: float) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        secs = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        secs = when.timestamp() - time.time()
    if secs != secs:  # NaN
        return None
    return max(0.0, min(cap, secs))


class Http:
    def __init__(self, base_url: str, what: str, *, headers: dict[str, str] | None = None,
                 auth: tuple[str, str] | None = None, timeout: float = 60.0, max_bytes: int = 64 << 20,
                 retries: int = 4, backoff: float = 0.5, max_wait: float = 120.0,
                 sleep: Callable[[float], None] = time.sleep, transport: httpx.BaseTransport | None = None):
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self._origin = (parts.scheme.lower(), parts.netloc.lower())
        self.what = what
        self.max_bytes, self.retries, self.backoff, self.max_wait = max_bytes, retries, backoff, max_wait
        self.sleep = sleep
        self.waits: list[float] = []  # what we waited for (tests and reports)
        self._client = httpx.Client(
            timeout=timeout, transport=transport, follow_redirects=False, auth=auth,
            headers={"User-Agent": f"consentry/{__version__} exchange", **(headers or {})})

    def close(self) -> None:
        self._client.close()

    def check_origin(self, url: str) -> str:
        parts = urlsplit(url)
        if (parts.scheme.lower(), parts.netloc.lower()) != self._origin:
            raise ExchangeError(f"{self.what} sent a link to another host; refused (credentials stay here)")
        return url

    def _once(self, method: str, url: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
        try:
            with self._client.stream(method, url, **kw) as r:
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > self.max_bytes:
                        raise ExchangeError(f"{self.what}'s answer is over {self.max_bytes} bytes; refused")
                return r.status_code, dict(r.headers), bytes(body)
        except httpx.HTTPError as exc:
            raise RetryLater(f"cannot reach {self.what}: {type(exc).__name__}") from None

    def request(self, method: str, url: str, *, retry: bool | None = None, ok: tuple[int, ...] = (),
                **kw: Any) -> tuple[int, bytes]:
        """(status, body) of a 2xx answer (or a status listed in ``ok``); raises otherwise."""
        self.check_origin(url)
        retry = (method.upper() == "GET") if retry is None else retry
        attempt = 0
        while True:
            wait: float | None = None
            try:
                status, headers, body = self._once(method, url, **kw)
            except RetryLater as exc:
                status, headers, body, err = 0, {}, b"", exc
            else:
                err = None
                if 200 <= status < 300 or status in ok:
                    return status, body
                if status in (401, 403):
                    raise Refused(f"{self.what} refused the credentials (HTTP {status})")
                if status not in RETRY_STATUSES:
                    raise HttpStatus(f"{self.what} answered HTTP {status}", status)
                wait = retry_after_seconds(headers.get("retry-after"), self.max_wait)
                err = RetryLater(f"{self.what} answered HTTP {status}", wait, status)
            if not retry or attempt >= self.retries:
                raise err
            delay = wait if wait is not None else min(self.max_wait, self.backoff * (2 ** attempt))
            self.waits.append(delay)
            self.sleep(delay)
            attempt += 1
