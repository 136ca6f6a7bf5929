"""The content ledger and the sweep of copies already online (issue 14). See docs/ledger.md.

Python API (used by the HTTP routes, the CLI and the notices work)::

    from consentry.ledger import LedgerService, Sweeper, ContentRecord

    ledger = LedgerService(db)
    ledger.write(ContentRecord.from_dict({"content_id": "p-1", "url": "https://…", "pdq": "…"}))
    ledger.resolve("https://…")          # URL or content id -> ContentInfo | None
    ledger.delete("p-1")                 # tombstone: never swept again
    ledger.hits(content_id="p-1")        # recorded sweep hits (dicts)

    sweeper = Sweeper(db, home=settings.home, rules=policy.rules.current, webhooks=policy.webhooks,
                      open_case=cases.enqueue_handler())
    sweeper.follow()                     # the bank change log since the durable cursor
    sweeper.sweep_entries([entry_id], trigger="notice:42")   # now; recorded, acted on, returned
    sweeper.find_copies(pdq=[hex], sha256=[hex], pdq_threshold=0)   # look only: nothing recorded
    sweeper.sweep_bank("victims")        # re-sweep a whole bank
    sweeper.on_hits(callback)            # callback(SweepReport) after new hits are committed

In ``consentry serve`` the app holds ``app.state.ledger`` and ``app.state.sweeper``.
"""

from __future__ import annotations

import os
from typing import Any

#: names imported on first use (PEP 562), so that ``consentry.ledger.records`` stays light to
#: import: a child process that reads JSON Lines for an import loads only that module
_LAZY = {"ContentInfo": "service", "ContentNotFound": "service", "LedgerService": "service",
         "ContentRecord": "records", "LedgerError": "records",
         "Copy": "sweep", "LedgerHit": "sweep", "Sweeper": "sweep", "SweepReport": "sweep", "SweepRunner": "sweep"}

__all__ = ["ContentInfo", "ContentNotFound", "ContentRecord", "Copy", "LedgerError", "LedgerHit",
           "LedgerService", "SweepReport", "Sweeper", "SweepRunner", "install", "sweep_interval"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"consentry.ledger.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sweep_interval() -> float:
    """``CONSENTRY_SWEEP_SECONDS``: how often ``consentry serve`` follows the bank change log
    (default 2; 0 turns the background sweep off — then run ``consentry sweep``)."""
    try:
        return max(0.0, float(os.environ.get("CONSENTRY_SWEEP_SECONDS", "2")))
    except ValueError:
        return 2.0


def install(app: Any, settings: Any, db: Any) -> Any:
    """Put the ledger and a sweeper acting through the app's rules, webhooks and review queue on
    ``app.state`` (``ledger``, ``sweeper``, ``sweep_runner``)."""
    from consentry.ledger.sweep import Sweeper, SweepRunner

    sweeper = Sweeper.for_policy(db, app.state.policy, settings, app.state.review.cases.enqueue_handler(),
                                 banks=app.state.consentry.banks)
    app.state.ledger = sweeper.ledger
    app.state.sweeper = sweeper
    app.state.sweep_runner = SweepRunner(sweeper, sweep_interval())
    return sweeper
