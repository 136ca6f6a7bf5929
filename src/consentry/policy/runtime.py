"""The policy at run time: the (reloading) rules, and carrying out their actions.

One :class:`PolicyRuntime` per API process (``app.state.policy``). The match routes call
:meth:`PolicyRuntime.decide` for the verdict and :meth:`PolicyRuntime.apply` for the side effects:

- ``preserve``: the uploaded bytes go to the evidence vault (when it is enabled and there are bytes:
  a hash-only lookup has nothing to preserve);
- ``webhook``: a signed payload (hashes, matches, decision; never media) is queued for the sink;
- ``enqueue``: every handler registered with :meth:`on_enqueue` is called with an
  :class:`EnqueueRequest` (the review queue registers one to open a case).

Nothing here may fail or slow a match response: each action is guarded and logged.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from consentry.db.session import Database
from consentry.policy.rules import Decision, RuleContext, RulesSource

log = logging.getLogger("consentry.policy")


@dataclass
class EnqueueRequest:
    """What a review queue needs to open a case for one matched content."""

    queue: str
    priority: int
    rule: str
    decision: dict[str, Any]
    query: dict[str, Any]  # the match response's query: sha256, pdq, … (hashes, never media)
    matches: list[dict[str, Any]]
    evidence: list[dict[str, Any]] = field(default_factory=list)
    uploader_id: str | None = None
    surface: str | None = None
    vault_item_id: str | None = None  # set when a preserve action stored the media
    content: bytes | None = field(default=None, repr=False)  # the upload, when there was one
    content_type: str | None = None


@dataclass
class Applied:
    vault_item_id: str | None = None
    webhooks: list[str] = field(default_factory=list)
    enqueued: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _match_summary(m: dict[str, Any]) -> dict[str, Any]:
    keys = ("bank", "bank_kind", "entry_id", "signal_type", "distance", "transform",
            "query_match_percent", "compared_match_percent")
    return {k: m.get(k) for k in keys if k in m}


class PolicyRuntime:
    def __init__(self, settings: Any, db: Database, *, rules_check_seconds: float = 1.0):
        from consentry.review.vault import Vault
        from consentry.review.webhooks import WebhookDispatcher

        self.settings = settings
        self.db = db
        self.rules = RulesSource(getattr(settings, "rules_path", None), check_seconds=rules_check_seconds)
        self.webhooks = WebhookDispatcher(db, lambda: self.rules.current().sinks)
        self.vault = Vault.from_settings(settings, db)
        self._enqueue_handlers: list[Callable[[EnqueueRequest], Any]] = []
        # enqueue handlers write to the database: they run on a worker thread, never in the
        # match response's path
        self._jobs: queue.Queue[EnqueueRequest | None] = queue.Queue(maxsize=10_000)
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()

    def on_enqueue(self, handler: Callable[[EnqueueRequest], Any]) -> None:
        """Register a handler for ``enqueue`` actions (e.g. the review queue opening a case)."""
        self._enqueue_handlers.append(handler)

    def decide(self, outcome: dict[str, Any], *, assessment: dict[str, Any] | None = None, uploader_id: str | None = None,
               surface: str | None = None) -> tuple[Decision, RuleContext]:
        ctx = RuleContext.from_outcome(outcome, assessment=assessment, uploader_id=uploader_id, surface=surface)
        return self.rules.current().evaluate(ctx), ctx

    def apply(self, decision: Decision, ctx: RuleContext, *, query: dict[str, Any],
              content: bytes | None = None, content_type: str | None = None) -> Applied:
        out = Applied()
        if decision.preserve and self.vault is not None and content:
            try:
                from consentry.media.sniff import SNIFF_BYTES, sniff

                # the vault records the media type (image/jpeg, ...), not the kind (photo/video)
                out.vault_item_id = self.vault.put(
                    content, reason="rules: " + ", ".join(decision.fired), retain_days=decision.retain_days,
                    content_type=sniff(content[:SNIFF_BYTES]).mime, actor="rules")
            except Exception as exc:  # noqa: BLE001
                log.exception("preserve failed")
                out.errors.append(f"preserve: {exc}")
        summary = {
            "decision": decision.verdict(), "query": query,
            "matches": [_match_summary(m) for m in ctx.matches][:100],
            "context": {"uploader_id": ctx.uploader_id, "surface": ctx.surface},
            "vault_item_id": out.vault_item_id,
        }
        for w in decision.webhooks:
            self.webhooks.start()
            if self.webhooks.enqueue(w.sink, "match.decision", {**summary, "rule": w.rule}):
                out.webhooks.append(w.sink)
            else:
                out.errors.append(f"webhook {w.sink}: dropped")
        for e in decision.enqueue:
            if not self._enqueue_handlers:
                continue
            req = EnqueueRequest(e.queue, e.priority, e.rule, decision.verdict(), query, ctx.matches,
                                 ctx.evidence, ctx.uploader_id, ctx.surface, out.vault_item_id, content,
                                 content_type)
            self._start_worker()
            try:
                self._jobs.put_nowait(req)
                out.enqueued.append(e.queue)
            except queue.Full:
                log.error("review enqueue backlog full: dropping an enqueue to %r", e.queue)
                out.errors.append(f"enqueue {e.queue}: backlog full")
        return out

    def decided(self, decision: dict[str, Any], case: dict[str, Any]) -> list[str]:
        """A review decision took effect (applied, or escalated): notify the sinks the rules name
        under ``decisions:`` with a signed ``case.decision`` payload (hashes, never media).
        Never raises; returns the sinks queued."""
        queued: list[str] = []
        try:
            sinks = self.rules.current().decision_sinks.get(str(decision.get("kind")), [])
            if not sinks:
                return queued
            payload = {"decision": decision, "case": case}
            self.webhooks.start()
            for sink in sinks:
                if self.webhooks.enqueue(sink, "case.decision", payload):
                    queued.append(sink)
        except Exception:  # noqa: BLE001 - a notification must never undo or block a decision
            log.exception("decision webhooks failed")
        return queued

    def _start_worker(self) -> None:
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._run_enqueues, name="policy-enqueue", daemon=True)
                self._worker.start()

    def _run_enqueues(self) -> None:
        while True:
            req = self._jobs.get()
            try:
                if req is None:
                    return
                for handler in self._enqueue_handlers:
                    try:
                        handler(req)
                    except Exception:  # noqa: BLE001 - one bad case must not stop the queue
                        log.exception("enqueue to %r failed", req.queue)
            finally:
                self._jobs.task_done()

    def drain(self) -> None:
        """Wait until every queued enqueue action has been handled (tests, shutdown)."""
        self._jobs.join()

    def close(self) -> None:
        if self._worker is not None and self._worker.is_alive():
            self._jobs.put(None)
            self._worker.join(timeout=10)
        self.webhooks.stop()
