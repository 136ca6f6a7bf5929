"""Decode deadlines and the per-process decode slots.

A decode stops at the earlier of two deadlines: ``MediaLimits.max_decode_seconds`` from its
start, and the deadline of the request it serves. The request deadline is a context variable set
by :class:`consentry.web.limits.TimeoutMiddleware`; FastAPI runs sync routes in a thread pool
with a copy of the context, so the decoding thread sees it and stops (raising
:class:`DecodeTimeout`) soon after the request has been answered 504, instead of working on.

Decodes also take one of ``MediaLimits.max_concurrent_decodes`` slots (process-wide), so a burst
of uploads queues instead of holding several decoded images in memory at once.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from typing import Iterator

from consentry.errors import MediaTooLarge

#: ``time.monotonic()`` value after which the current request's work is abandoned (None: none).
_request_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "consentry_request_deadline", default=None
)
#: The deadline of the decode in progress in this context (None: none).
_decode_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "consentry_decode_deadline", default=None
)


class DecodeTimeout(MediaTooLarge):
    """Decoding took longer than allowed (or the request it served timed out)."""

    code = "decode_timeout"


def set_request_deadline(seconds: float) -> contextvars.Token:
    """Abandon media work in this context (and its copies) ``seconds`` from now."""
    return _request_deadline.set(time.monotonic() + seconds if seconds > 0 else None)


def reset_request_deadline(token: contextvars.Token) -> None:
    _request_deadline.reset(token)


def _deadline() -> float | None:
    found = [d for d in (_request_deadline.get(), _decode_deadline.get()) if d is not None]
    return min(found) if found else None


def remaining() -> float | None:
    """Seconds left before the current deadline (None: no deadline)."""
    d = _deadline()
    return None if d is None else d - time.monotonic()


def check() -> None:
    """Raise :class:`DecodeTimeout` when the deadline has passed (call it inside decode loops)."""
    d = _deadline()
    if d is not None and time.monotonic() > d:
        if _request_deadline.get() is not None and time.monotonic() > _request_deadline.get():
            raise DecodeTimeout("the request timed out while decoding: decoding stopped")
        raise DecodeTimeout("decoding took longer than the limit (CONSENTRY_MAX_DECODE_SECONDS): stopped")


_slots_lock = threading.Lock()
_slots: dict[int, threading.BoundedSemaphore] = {}


def _semaphore(n: int) -> threading.BoundedSemaphore:
    with _slots_lock:
        sem = _slots.get(n)
        if sem is None:
            sem = _slots[n] = threading.BoundedSemaphore(n)
        return sem


@contextlib.contextmanager
def decoding(limits) -> Iterator[None]:
    """One decode: wait for a slot (within the deadline), then run under the decode deadline.

    Re-entrant in the same context (a decode inside a decode takes no second slot)."""
    if _decode_deadline.get() is not None:  # already inside a decode
        yield
        return
    seconds = float(getattr(limits, "max_decode_seconds", 0) or 0)
    token = _decode_deadline.set(time.monotonic() + seconds if seconds > 0 else None)
    # a sentinel so nesting is detected even when the decode itself has no time limit
    if seconds <= 0:
        _decode_deadline.set(float("inf"))
    try:
        n = int(getattr(limits, "max_concurrent_decodes", 0) or 0)
        if n <= 0:
            check()
            yield
            return
        sem = _semaphore(n)
        left = remaining()
        if left is not None and left != float("inf"):
            if left <= 0 or not sem.acquire(timeout=left):
                raise DecodeTimeout("timed out waiting for a free decoder (CONSENTRY_MAX_CONCURRENT_DECODES)")
        else:
            sem.acquire()
        try:
            check()
            yield
        finally:
            sem.release()
    finally:
        try:
            _decode_deadline.reset(token)
        except ValueError:  # a generator finalised in another context: nothing to restore there
            pass


__all__ = ["DecodeTimeout", "check", "decoding", "remaining", "set_request_deadline",
           "reset_request_deadline"]
