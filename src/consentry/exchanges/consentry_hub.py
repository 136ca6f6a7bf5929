"""``consentry-hub``: subscribe to another Consentry instance acting as a victim hub.

The partner holds a ``partner`` key on the hub (``matcher`` keys issued before that role existed
still work for the change log and feedback). It tails the hub's ``GET /v1/changes`` (which for
such keys carries only the banks the hub publishes), adds what the hub adds and **withdraws what
the hub withdraws** (HMA keeps withdrawn hashes; a victim who withdraws must be obeyed), and
posts per-hash feedback to ``POST /v1/feedback``.

When the hub deletes a bank it ever published, its change log carries a ``bank_deleted`` row
(also after the bank was un-published: partners still hold what they pulled while it was
published). The partner then withdraws every entry it pulled from that hub bank (each entry
remembers the hub bank in ``meta.hub_bank_id``); the withdrawals are ordinary ``withdraw``
changes here, so this instance's own partners and workers follow. Entries pulled before hub
banks were recorded (older versions) carry no ``hub_bank_id`` and are left alone: re-pull from
cursor 0 to tag them. A hash in two hub banks is one entry here and goes with the bank it was
first pulled from.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterator

import httpx

from consentry import __version__
from consentry.banks.formats.records import HashRecord
from consentry.exchanges.base import ExchangeError

MAX_RESPONSE = 64 * 1024 * 1024
PAGE = 1000
_ADD_OPS = {"add", "enable"}
_REMOVE_OPS = {"withdraw", "disable"}


class ConsentryHubClient:
    def __init__(self, url: str, key: str, *, timeout: float = 30.0, transport: httpx.BaseTransport | None = None):
        self.url = url.rstrip("/")
        self._client = httpx.Client(
            timeout=timeout, transport=transport, follow_redirects=False,
            headers={"Authorization": f"Bearer {key}", "User-Agent": f"consentry/{__version__} exchange"})

    @staticmethod
    def _json(status: int, content: bytes) -> Any:
        if status in (401, 403):
            raise ExchangeError(f"the hub refused the key ({status}): it needs a partner key")
        if status >= 400:
            detail = ""
            try:
                detail = str(json.loads(content).get("detail", ""))[:200]
            except (ValueError, AttributeError):
                pass
            raise ExchangeError(f"the hub answered {status}" + (f": {detail}" if detail else ""))
        try:
            return json.loads(content)
        except ValueError:
            raise ExchangeError("the hub sent something that is not JSON") from None

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        try:
            with self._client.stream("GET", self.url + path, params=params) as r:
                body = bytearray()
                for chunk in r.iter_bytes():
                    body += chunk
                    if len(body) > MAX_RESPONSE:
                        raise ExchangeError(f"the hub's answer is over {MAX_RESPONSE} bytes")
                status = r.status_code
        except httpx.HTTPError as exc:
            raise ExchangeError(f"cannot reach the hub at {self.url}: {type(exc).__name__}") from None
        return self._json(status, bytes(body))

    def changes(self, cursor: int, limit: int = PAGE) -> tuple[list[dict[str, Any]], int]:
        body = self._get("/v1/changes", {"cursor": cursor, "limit": limit, "published": "true"})
        if not isinstance(body, dict) or not isinstance(body.get("changes"), list):
            raise ExchangeError("the hub's change log has an unexpected shape")
        try:
            next_cursor = int(body.get("next_cursor", cursor))
        except (TypeError, ValueError):
            raise ExchangeError("the hub's change log has a bad cursor") from None
        return [r for r in body["changes"] if isinstance(r, dict)], next_cursor

    def feedback(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        try:
            r = self._client.post(self.url + "/v1/feedback", json={"items": items})
        except httpx.HTTPError as exc:
            raise ExchangeError(f"cannot reach the hub at {self.url}: {type(exc).__name__}") from None
        return self._json(r.status_code, r.content[:MAX_RESPONSE])


def records_from_changes(rows: list[dict[str, Any]], exchange: str) -> tuple[list[HashRecord], int]:
    """Hub change rows -> add/remove records for the local bank, in order; bank events are skipped."""
    records: list[HashRecord] = []
    skipped = 0
    for row in rows:
        op, st, value = row.get("op"), row.get("signal_type"), row.get("value")
        if not isinstance(st, str) or not isinstance(value, str) or op not in _ADD_OPS | _REMOVE_OPS:
            skipped += 1
            continue
        meta: dict[str, Any] = {"hub_entry_id": row.get("entry_id")}
        if isinstance(row.get("bank_id"), int) and not isinstance(row.get("bank_id"), bool):
            meta["hub_bank_id"] = row["bank_id"]  # so a bank_deleted can withdraw it (issue 23)
        quality = row.get("quality")
        if isinstance(quality, int) and 0 <= quality <= 100:
            meta["quality"] = quality
        records.append(HashRecord(st, value, "add" if op in _ADD_OPS else "remove", [], [f"exchange:{exchange}"],
                                  "ncii", f"exchange:{exchange}", meta, f"change {row.get('cursor')}"))
    return records, skipped


def _pulled_from(banks, bank_id: int, hub_bank_id: int) -> Iterator[tuple[Any, list[Any]]]:
    """(session, entries) pages of local bank ``bank_id``'s entries, not withdrawn, that were
    pulled from hub bank ``hub_bank_id`` (``meta.hub_bank_id``), 5,000 read at a time; each page's
    session commits what the caller changed once the caller asks for the next page."""
    from sqlalchemy import select

    from consentry.db.models import Entry

    after = 0
    while True:
        with banks.db.session() as s:
            page = list(s.scalars(select(Entry).where(Entry.bank_id == bank_id, Entry.status != "withdrawn",
                                                      Entry.id > after).order_by(Entry.id).limit(5000)))
            if not page:
                return
            after = page[-1].id
            yield s, [e for e in page if isinstance(e.meta, dict) and e.meta.get("hub_bank_id") == hub_bank_id]


def withdraw_hub_bank(banks, bank: str, exchange: str, hub_bank_id: int) -> int:
    """Withdraw every entry of local ``bank`` pulled from hub bank ``hub_bank_id`` (a
    ``bank_deleted`` on the hub); returns how many were withdrawn. Idempotent."""
    from consentry.db.models import Change, utcnow
    from consentry.review.audit import AuditLog

    withdrawn = 0
    with banks.db.session() as s:
        bank_id = banks._bank(s, bank).id
    for s, hit in _pulled_from(banks, bank_id, hub_bank_id):
        if hit:
            now = utcnow()
            for e in hit:
                e.status, e.updated_at = "withdrawn", now
            s.execute(Change.__table__.insert(), [{"op": "withdraw", "bank_id": bank_id, "entry_id": e.id,
                                                   "signal_type": e.signal_type, "at": now} for e in hit])
            withdrawn += len(hit)
    if withdrawn:
        AuditLog(banks.db).record("bank.entries", f"exchange:{exchange}", {
            "bank": bank, "bank_id": bank_id, "status": "withdrawn", "count": withdrawn,
            "reason": "bank_deleted", "hub_bank_id": hub_bank_id})
    return withdrawn


def _hub_until(row: dict[str, Any]) -> tuple[bool, datetime | None]:
    """(whether the row states its hub bank's timed disable, the end of it if still ahead)."""
    if "bank_disabled_until" not in row:
        return False, None  # a hub from before bank states were served
    raw = row.get("bank_disabled_until")
    if not isinstance(raw, str) or not raw:
        return True, None
    try:
        until = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        return False, None
    until = until if until.tzinfo else until.replace(tzinfo=timezone.utc)
    return True, (until if until > datetime.now(timezone.utc) else None)


def mirror_hub_bank_disable(banks, bank: str, exchange: str, hub_bank_id: int, until: datetime | None) -> int:
    """Follow a hub bank's timed disable on the entries of local ``bank`` pulled from it: until
    ``until`` they are ``disabled`` (with that end, so they match again on time even if the hub's
    next word is missed), marked ``meta.hub_bank_disabled``; with ``until`` None, the entries so
    marked are active again. Entries disabled or withdrawn here for other reasons are left alone.
    Each change is a ``disable``/``enable`` row, so this instance's workers and partners follow.
    Returns how many entries changed. Idempotent."""
    from consentry.banks.service import as_utc
    from consentry.db.models import Change, utcnow
    from consentry.review.audit import AuditLog

    changed = 0
    with banks.db.session() as s:
        bank_id = banks._bank(s, bank).id
    for s, pulled in _pulled_from(banks, bank_id, hub_bank_id):
        now = utcnow()
        log = []
        for e in pulled:
            mine = bool(e.meta.get("hub_bank_disabled"))
            if until is not None and (e.status == "active" or (mine and as_utc(e.disabled_until) != until)):
                e.status, e.disabled_until = "disabled", until
                e.meta = {**e.meta, "hub_bank_disabled": True}
                log.append({"op": "disable", "bank_id": bank_id, "entry_id": e.id,
                            "signal_type": e.signal_type, "at": now})
            elif until is None and mine:
                e.status, e.disabled_until = "active", None
                e.meta = {k: v for k, v in e.meta.items() if k != "hub_bank_disabled"}
                log.append({"op": "enable", "bank_id": bank_id, "entry_id": e.id,
                            "signal_type": e.signal_type, "at": now})
            else:
                continue
            e.updated_at = now
        if log:
            s.execute(Change.__table__.insert(), log)
            changed += len(log)
    if changed:
        AuditLog(banks.db).record("bank.entries", f"exchange:{exchange}", {
            "bank": bank, "bank_id": bank_id, "status": "disabled" if until else "active", "count": changed,
            "until": until.isoformat() if until else None, "reason": "hub_bank_disabled", "hub_bank_id": hub_bank_id})
    return changed


def apply_changes(banks, bank: str, rows: list[dict[str, Any]], exchange: str, report) -> None:
    """Apply one page of hub change rows to local ``bank`` in order, counting into ``report``
    (a :class:`PullReport`): adds and withdrawals as records, ``bank_deleted`` as the
    withdrawal of everything pulled from that hub bank."""
    segment: list[dict[str, Any]] = []
    for row in [*rows, None]:
        if row is not None and row.get("op") != "bank_deleted" and not (
                row.get("op") == "bank" and _hub_until(row)[0]):
            segment.append(row)
            continue
        if segment:
            records, skipped = records_from_changes(segment, exchange)
            result = banks.add_records(bank, records, added_by=f"exchange:{exchange}")
            report.skipped += skipped + len(result.errors)
            report.added += result.added + result.reactivated
            report.removed += result.removed
            report.unchanged += result.unchanged + result.remove_not_found
            report.errors += [f"{e.position}: {e.message}" for e in result.errors]
            segment = []
        if row is not None:
            hub_bank = row.get("bank_id")
            if not isinstance(hub_bank, int) or isinstance(hub_bank, bool):
                report.skipped += 1
            elif row.get("op") == "bank":  # its timed disable, as the hub states it now
                mirror_hub_bank_disable(banks, bank, exchange, hub_bank, _hub_until(row)[1])
            else:
                report.removed += withdraw_hub_bank(banks, bank, exchange, hub_bank)
