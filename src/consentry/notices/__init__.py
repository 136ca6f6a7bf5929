"""Notices (TAKE IT DOWN Act, DSA Art. 16) and statements of reasons (DSA Art. 17, 24(5)).
See docs/notices.md.

Python API::

    from consentry.notices import NoticeService, NoticeInput, Ground
    notices = NoticeService(db, cases=case_service, sweeper=sweeper, vault=vault)
    receipt = notices.submit(NoticeInput("take_it_down", ["https://…"], signature="…", good_faith=True,
                                         notifier_email="…"), channel="api", submitted_by="key:3")
    notices.decide(receipt.number, "alice", "remove", ground=Ground("legal", "47 U.S.C. § 223a"))
    notices.get(receipt.number)["efforts"]          # what the sweep found and what was removed, when
    notices.summary_for_case(case_id)               # for the console's case page (None: not a notice)

In ``consentry serve`` the app holds ``app.state.notices`` (and ``app.state.notice_runner``, which
escalates notices before their clock runs out).
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from consentry.notices.clock import ClockSpec
from consentry.notices.regimes import NoticeConfig, load_config
from consentry.notices.service import NoticeError, NoticeInput, NoticeInvalid, NoticeNotFound, NoticeService, Receipt
from consentry.notices.statements import Ground, StatementService

__all__ = ["ClockSpec", "Ground", "NoticeConfig", "NoticeError", "NoticeInput", "NoticeInvalid", "NoticeNotFound",
           "NoticeRunner", "NoticeService", "Receipt", "StatementService", "install", "load_config"]

log = logging.getLogger("consentry.notices")


class NoticeRunner:
    """Background thread of ``consentry serve``: escalates due notices every ``interval`` seconds
    (``CONSENTRY_NOTICE_ESCALATION_SECONDS``, default 60; 0 = off)."""

    def __init__(self, service: NoticeService, interval: float):
        self.service, self.interval = service, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notice-escalation", daemon=True)

    def start(self) -> None:
        if self.interval > 0 and not self._thread.is_alive():
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.service.escalate_due()
            except Exception:  # noqa: BLE001 - keep serving; the next round retries
                log.exception("notice escalation failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)


def install(app: Any, settings: Any, db: Any) -> NoticeService:
    """``app.state.notices`` (cases, vault and the ledger sweeper of the app) and its runner."""
    try:
        interval = max(0.0, float(os.environ.get("CONSENTRY_NOTICE_ESCALATION_SECONDS", "60")))
    except ValueError:
        interval = 60.0
    service = NoticeService(db, config=load_config(settings.home), cases=app.state.review.cases,
                            sweeper=app.state.sweeper, vault=app.state.policy.vault,
                            banks=app.state.consentry.banks, limits=settings.limits)
    app.state.notices = service
    app.state.notice_runner = NoticeRunner(service, interval)
    return service
