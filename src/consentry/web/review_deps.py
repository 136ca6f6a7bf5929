"""The review services of one app (cases, exposure log, console users), built on first use.

The API routers (``/v1/cases``) and the console pages share them through :func:`review`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from consentry.review.cases import CaseService
from consentry.review.exposure import ExposureLog
from consentry.review.users import LoginThrottle, UserService
from consentry.web.deps import state

_lock = threading.Lock()


@dataclass
class ReviewState:
    cases: CaseService
    exposure: ExposureLog
    users: UserService
    throttle: LoginThrottle
    vault: Any  # consentry.review.vault.Vault | None


def _build(request: Request) -> ReviewState:
    st = state(request)
    db = st.banks.db
    vault = None
    try:
        from consentry.review.events import open_vault

        vault = open_vault(st.settings, db)
    except ImportError:  # the vault module is optional; without it the console shows hashes only
        vault = None
    return ReviewState(
        cases=CaseService(db, st.banks, vault=vault, limits=st.settings.limits,
                          claim_minutes=st.settings.review_claim_minutes),
        exposure=ExposureLog(db, st.settings.exposure_budget),
        users=UserService(db, st.settings.console_session_hours),
        throttle=LoginThrottle(),
        vault=vault,
    )


def review(request: Request) -> ReviewState:
    app_state = request.app.state
    rs = getattr(app_state, "review", None)
    if rs is None:
        with _lock:
            rs = getattr(app_state, "review", None)
            if rs is None:
                rs = _build(request)
                app_state.review = rs
    return rs
