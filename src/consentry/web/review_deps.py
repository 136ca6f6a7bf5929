"""The review services of one app (cases, exposure log, console users), built with the app.

The API routers (``/v1/cases``), the console pages and the rules' ``enqueue`` actions share them
through :func:`review`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from consentry.banks.service import BankService
from consentry.config import Settings
from consentry.limits_store import LimitStore
from consentry.review.cases import CaseService
from consentry.review.exposure import ExposureLog
from consentry.review.users import LoginThrottle, UserService


@dataclass
class ReviewState:
    cases: CaseService
    exposure: ExposureLog
    users: UserService
    throttle: LoginThrottle
    vault: Any  # consentry.review.vault.Vault | None (off unless CONSENTRY_VAULT_KEY is set)


def build_review_state(settings: Settings, banks: BankService, vault: Any) -> ReviewState:
    db = banks.db
    return ReviewState(
        cases=CaseService(db, banks, vault=vault, limits=settings.limits,
                          claim_minutes=settings.review_claim_minutes),
        exposure=ExposureLog(db, settings.exposure_budget),
        users=UserService(db, settings.console_session_hours),
        throttle=LoginThrottle(store=LimitStore(db)),  # unknown names' counters shared (issue 23)
        vault=vault,
    )


def review(request: Request) -> ReviewState:
    return request.app.state.review
