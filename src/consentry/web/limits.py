"""Request body limit, request timeout, per-key rate limits and the match log writer."""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import threading
import time
from typing import Any

from consentry.db.models import MatchLog
from consentry.db.session import Database
from consentry.limits_store import SharedRateLimiter
from consentry.web.problems import problem_response

log = logging.getLogger("consentry.web")


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` (413) before they are spooled anywhere."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")

        def too_big(*asgi):  # built only when needed: most requests never are
            return problem_response(413, "too-large", f"request body is over the limit of {self.max_bytes} bytes",
                                    scope.get("path"))(*asgi)

        if length is not None:
            try:
                if int(length) > self.max_bytes:
                    return await too_big(scope, receive, send)
            except ValueError:
                return await problem_response(400, "bad-request", "bad Content-Length")(scope, receive, send)
        seen = 0
        started = False

        async def limited_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _BodyTooLarge()
            return message

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLarge:
            if not started:
                await too_big(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class TimeoutMiddleware:
    """Answer 504 when a request takes longer than ``seconds``; media decoding for it then stops
    (a deadline in a context variable, see :mod:`consentry.media.guard`)."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self.seconds <= 0:
            return await self.app(scope, receive, send)
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        # media decoding in the request's threads sees this deadline and stops once it passes
        from consentry.media.guard import reset_request_deadline, set_request_deadline

        token = set_request_deadline(self.seconds)
        try:  # asyncio.timeout, not wait_for: no extra task per request
            async with asyncio.timeout(self.seconds):
                await self.app(scope, receive, tracking_send)
        except TimeoutError:
            if not started:
                await problem_response(504, "timeout", f"the request took longer than {self.seconds:g} s",
                                       scope.get("path"))(scope, receive, send)
        finally:
            reset_request_deadline(token)


#: Per-key (and per-IP, per-case) token buckets shared by every worker and host through the
#: database, with a local fast path: see :mod:`consentry.limits_store` (issue 23).
RateLimiter = SharedRateLimiter


class MatchLogWriter:
    """Writes one ``match_log`` row per match request from a background thread, in batches."""

    def __init__(self, db: Database, flush_seconds: float = 0.5):
        self.db = db
        self.flush_seconds = flush_seconds
        self._q: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=100_000)
        self._thread = threading.Thread(target=self._run, name="match-log", daemon=True)
        self._thread.start()

    def record(self, key_id: int | None, route: str, signal_types: list[str], result_count: int) -> None:
        from consentry.db.models import utcnow

        row = {"key_id": key_id, "route": route, "signal_types": ",".join(sorted(set(signal_types)))[:200],
               "result_count": result_count, "at": utcnow()}
        try:
            self._q.put_nowait(row)
        except queue.Full:  # never block a match on logging; say so loudly instead
            log.error("match log queue full: dropping a log row")

    def _run(self) -> None:
        stop = False
        while not stop:
            rows: list[dict[str, Any]] = []
            try:
                item = self._q.get()
                if item is None:
                    stop = True
                else:
                    rows.append(item)
                # gather what arrives within the window: one insert per window, not one per request
                # (a commit per row cost the server more CPU than the lookup itself)
                deadline = time.monotonic() + self.flush_seconds
                while not stop and len(rows) < 5000:
                    wait = deadline - time.monotonic()
                    item = self._q.get(timeout=wait) if wait > 0 else self._q.get_nowait()
                    if item is None:
                        stop = True
                    else:
                        rows.append(item)
            except queue.Empty:
                pass
            if rows:
                try:
                    with self.db.session() as s:
                        s.execute(MatchLog.__table__.insert(), rows)
                except Exception:  # noqa: BLE001
                    log.exception("could not write %d match log rows", len(rows))

    def close(self, timeout: float = 5.0) -> None:
        self._q.put(None)
        self._thread.join(timeout)


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), default=str)
