"""Cases, the review queue and decisions.

- A case is created by an ``enqueue`` action (:meth:`CaseService.create_from_action`) or by a
  manual submission (:meth:`CaseService.submit`). Contents about the same uploader in the same
  queue join the uploader's open case, so a reviewer decides once per account.
- The queue is ordered by priority (0-100, higher first), then by SLA due time.
- A reviewer claims a case (the claim lapses after ``claim_minutes``) and decides:
  ``confirm`` adds every item's PDQ and MD5 to a chosen bank (so the next match finds them),
  ``dismiss`` closes it, optionally adding the hashes to an allow bank, ``escalate`` hands it to
  curators/admins. An addition to a bank marked ``shared`` waits for a second, different
  reviewer (four-eyes) before anything is written to the bank.
- Every decision and approval is recorded in the audit log in the same transaction.

The CLI, the HTTP API and the console all call this class.
"""

from __future__ import annotations


import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from consentry.banks.service import BankError, BankService, Conflict, NotFound
from consentry.config import MediaLimits
from consentry.db.models import utcnow
from consentry.db.models_review import CASE_STATUSES, Case, CaseItem, Decision  # noqa: F401
from consentry.db.session import Database
from consentry.errors import ConsentryError, article
from consentry.review.audit import AuditLog

log = logging.getLogger("consentry.review")

OPEN_STATUSES = ("open", "claimed", "escalated", "pending_approval")
SENIOR_ROLES = ("curator", "admin")  # may decide escalated cases
MAX_ITEMS_PER_CASE = 500
UNDO_SECONDS = 30  # a reviewer may take a decision back this long after making it
MAX_JSON_ITEMS = 200  # matches / evidence kept per item
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_QUEUE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$")
# Serve vaulted bytes only with these types (anything else goes out as an opaque download).
SAFE_MEDIA_TYPES = {"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp",
                    "video/mp4", "video/webm", "video/quicktime"}


class CaseError(ConsentryError):
    code = "case_error"


class CaseNotFound(NotFound):
    code = "not_found"


class CaseConflict(Conflict):
    """Claimed by someone else, already decided, four-eyes violated, ..."""

    code = "conflict"


def sla_hours_for(priority: int) -> float:
    """Default time to a decision: urgent (>= 80) 1 h, high (>= 50) 4 h, else 24 h."""
    return 1.0 if priority >= 80 else 4.0 if priority >= 50 else 24.0


def _aware(dt: datetime | None) -> datetime | None:
    if dt is None:
        return None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _iso(dt: datetime | None) -> str | None:
    dt = _aware(dt)
    return dt.isoformat() if dt else None


@dataclass
class ItemInput:
    """One content to review: its signals, what matched, the evidence and (optionally) the bytes."""

    sha256: str | None = None
    md5: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None
    content_type: str = "photo"
    matches: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[dict[str, Any]] = field(default_factory=list)
    media: bytes | None = None  # kept only in the encrypted vault, and only when it is enabled
    vault_item_id: str | None = None  # already in the vault (a ``preserve`` action stored it)


@dataclass
class ItemInfo:
    id: int
    case_id: int
    sha256: str | None
    md5: str | None
    pdq: str | None
    pdq_quality: int | None
    content_type: str
    media_type: str | None
    matches: list[dict[str, Any]]
    evidence: list[dict[str, Any]]
    vault_item_id: str | None
    added_at: datetime

    @property
    def has_media(self) -> bool:
        return self.vault_item_id is not None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "sha256": self.sha256, "md5": self.md5, "pdq": self.pdq,
                "pdq_quality": self.pdq_quality, "content_type": self.content_type,
                "media_type": self.media_type, "matches": self.matches, "evidence": self.evidence, "has_media": self.has_media,
                "added_at": _iso(self.added_at)}


@dataclass
class DecisionInfo:
    id: int
    case_id: int
    reviewer: str
    kind: str
    bank: str | None
    status: str
    note: str
    created_at: datetime
    second_reviewer: str | None
    reviewed_at: datetime | None
    applied_at: datetime | None
    result: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "case_id": self.case_id, "reviewer": self.reviewer, "kind": self.kind,
                "bank": self.bank, "status": self.status, "note": self.note,
                "created_at": _iso(self.created_at), "second_reviewer": self.second_reviewer,
                "reviewed_at": _iso(self.reviewed_at), "applied_at": _iso(self.applied_at),
                "result": self.result}


@dataclass
class CaseInfo:
    id: int
    status: str
    queue: str
    priority: int
    uploader_id: str | None
    group_key: str
    source: str
    submitted_by: str | None
    note: str
    created_at: datetime
    updated_at: datetime
    sla_due_at: datetime
    claimed_by: str | None
    claimed_at: datetime | None
    claim_expires_at: datetime | None
    decided_at: datetime | None
    item_count: int = 0
    items: list[ItemInfo] = field(default_factory=list)
    decisions: list[DecisionInfo] = field(default_factory=list)

    @property
    def overdue(self) -> bool:
        return self.status in OPEN_STATUSES and _aware(self.sla_due_at) < utcnow()

    def claim_holder(self, now: datetime | None = None) -> str | None:
        """Who holds a live claim, if anyone."""
        now = now or utcnow()
        if self.claimed_by and self.claim_expires_at and _aware(self.claim_expires_at) > now:
            return self.claimed_by
        return None

    @property
    def pending_decision(self) -> DecisionInfo | None:
        return next((d for d in self.decisions if d.status == "pending_second_review"), None)

    def to_dict(self, *, items: bool = False) -> dict[str, Any]:
        out = {"id": self.id, "status": self.status, "queue": self.queue, "priority": self.priority,
               "uploader_id": self.uploader_id, "source": self.source, "submitted_by": self.submitted_by,
               "note": self.note, "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
               "sla_due_at": _iso(self.sla_due_at), "overdue": self.overdue,
               "claimed_by": self.claim_holder(), "claimed_at": _iso(self.claimed_at),
               "claim_expires_at": _iso(self.claim_expires_at), "decided_at": _iso(self.decided_at),
               "item_count": self.item_count}
        if items:
            out["items"] = [i.to_dict() for i in self.items]
            out["decisions"] = [d.to_dict() for d in self.decisions]
        return out


def _item_info(i: CaseItem) -> ItemInfo:
    return ItemInfo(i.id, i.case_id, i.content_sha256, i.md5, i.pdq, i.pdq_quality, i.content_type,
                    i.media_type, list(i.matches or []), list(i.evidence or []), i.vault_item_id, i.added_at)


def _decision_info(d: Decision) -> DecisionInfo:
    return DecisionInfo(d.id, d.case_id, d.reviewer, d.kind, d.bank, d.status, d.note or "", d.created_at,
                        d.second_reviewer, d.reviewed_at, d.applied_at, dict(d.result or {}))


def _case_info(c: Case, item_count: int = 0, items: Sequence[CaseItem] = (),
               decisions: Sequence[Decision] = ()) -> CaseInfo:
    return CaseInfo(c.id, c.status, c.queue, c.priority, c.uploader_id, c.group_key, c.source, c.submitted_by,
                    c.note or "", c.created_at, c.updated_at, c.sla_due_at, c.claimed_by, c.claimed_at,
                    c.claim_expires_at, c.decided_at, item_count, [_item_info(i) for i in items],
                    [_decision_info(d) for d in decisions])


def _add_note(existing: str | None, note: str) -> str:
    """Append ``note`` as a line unless the case already says it (a rule that fires for every
    item of an uploader must not repeat "rule X" once per item)."""
    existing = existing or ""
    note = (note or "").strip()[:4000]
    if not note or note in existing.split("\n"):
        return existing
    return ((existing + "\n") if existing else "") + note


def _get(s: Session, model: Any, row_id: int, what: str) -> Any:
    """The row ``row_id`` of ``model``; CaseNotFound ("no <what> <id>") if there is none."""
    row = s.get(model, row_id)
    if row is None:
        raise CaseNotFound(f"no {what} {row_id}")
    return row


def _json_list(value: Any, what: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise CaseError(f"{what} must be a list of objects")
    return value[:MAX_JSON_ITEMS]


class CaseService:
    def __init__(self, db: Database, banks: BankService | None = None, *, vault: Any = None,
                 limits: MediaLimits | None = None, claim_minutes: int = 30):
        self.db = db
        self.banks = banks or BankService(db)
        self.vault = vault
        self.limits = limits or MediaLimits()
        self.claim_minutes = claim_minutes

    # ----------------------------------------------------------------- create
    def enqueue_handler(self):
        """A handler for :meth:`consentry.policy.runtime.PolicyRuntime.on_enqueue`: an ``enqueue``
        action of the rules opens (or joins) a case holding the match, its evidence and, when the
        vault is on, the upload."""
        def handle(req) -> CaseInfo:
            q = req.query or {}
            item = ItemInput(
                sha256=q.get("sha256"), md5=q.get("md5"),
                pdq=q.get("pdq") or (q.get("value") if q.get("signal_type") == "pdq" else None),
                pdq_quality=q.get("pdq_quality"), content_type=req.content_type or q.get("content_type") or "photo",
                matches=list(req.matches), evidence=list(req.evidence),
                # the upload is always hashed here (real media type, MD5, SHA-256), even when a
                # ``preserve`` action already stored it: _create does not store it twice
                media=req.content or None, vault_item_id=req.vault_item_id,
            )
            if q.get("signal_type") == "md5" and not item.md5:
                item.md5 = q.get("value")
            if q.get("signal_type") == "sha256" and not item.sha256:
                item.sha256 = q.get("value")
            action = {"queue": req.queue, "priority": req.priority, "rule": req.rule}
            try:
                return self.create_from_action(action, item, uploader_id=req.uploader_id)
            except CaseError:
                if item.media is None:
                    raise
                # bytes the matcher could read but the case service cannot: open the case on the
                # match's own hashes rather than lose it
                item.media = None
                item.content_type = item.content_type if item.content_type in ("photo", "video") else "file"
                return self.create_from_action(action, item, uploader_id=req.uploader_id)
        return handle

    def create_from_action(self, action: dict[str, Any], item: ItemInput, *, uploader_id: str | None = None,
                           actor: str = "policy") -> CaseInfo:
        """Create (or join) a case for an ``enqueue`` action: ``{"queue", "priority"}``."""
        return self._create(item, queue=str(action.get("queue") or "default"),
                            priority=action.get("priority", 50), uploader_id=uploader_id,
                            source="enqueue", submitted_by=actor,
                            note=str(action.get("note") or (f"rule {action['rule']}" if action.get("rule") else "")))

    def submit(self, item: ItemInput, *, queue: str = "manual", priority: int = 50,
               uploader_id: str | None = None, note: str = "", submitted_by: str = "manual") -> CaseInfo:
        """A manual submission (moderator, or a platform via ``POST /v1/cases``)."""
        return self._create(item, queue=queue, priority=priority, uploader_id=uploader_id,
                            source="manual", submitted_by=submitted_by, note=note)

    def _prepare(self, item: ItemInput) -> tuple[ItemInput, str | None]:
        """Validate the signals; compute them from the media when given. Returns (item, mime)."""
        mime = None
        if item.media is not None:
            from consentry.hashing import hash_content
            from consentry.media.content import Content

            if not item.media:
                raise CaseError("the media file is empty")
            content = Content.from_bytes(item.media, self.limits)
            hashed = hash_content(content)
            if hashed.error:
                raise CaseError(f"cannot read the media: {hashed.error}")
            item.sha256, item.md5 = hashed.sha256, hashed.md5
            if hashed.pdq:
                item.pdq, item.pdq_quality = hashed.pdq, hashed.pdq_quality
            item.content_type = content.content_type
            mime = content.sniffed.mime
        item.sha256 = (item.sha256 or "").strip().lower() or None
        item.md5 = (item.md5 or "").strip().lower() or None
        item.pdq = (item.pdq or "").strip().lower() or None
        if item.sha256 and not _HEX64.match(item.sha256):
            raise CaseError("sha256 must be 64 hex digits")
        if item.md5 and not _HEX32.match(item.md5):
            raise CaseError("md5 must be 32 hex digits")
        if item.pdq and not _HEX64.match(item.pdq):
            raise CaseError("PDQ must be 64 hex digits")
        if item.pdq_quality is not None and not (0 <= int(item.pdq_quality) <= 100):
            raise CaseError("PDQ quality must be 0 to 100")
        if not (item.sha256 or item.md5 or item.pdq):
            raise CaseError("give the media or at least one hash (sha256, md5 or pdq)")
        if item.content_type not in ("photo", "video", "file"):
            raise CaseError("content type must be photo, video or file")
        item.matches = _json_list(item.matches, "matches")
        item.evidence = _json_list(item.evidence, "evidence")
        return item, mime

    def _create(self, item: ItemInput, *, queue: str, priority: Any, uploader_id: str | None, source: str,
                submitted_by: str, note: str) -> CaseInfo:
        if not _QUEUE.match(queue or ""):
            raise CaseError("queue name must be 1-100 characters: letters, digits, '.', '_', '-'")
        try:
            priority = int(priority)
        except (TypeError, ValueError):
            raise CaseError("priority must be an integer from 0 to 100") from None
        if not 0 <= priority <= 100:
            raise CaseError("priority must be an integer from 0 to 100")
        uploader_id = (uploader_id or "").strip() or None
        if uploader_id and len(uploader_id) > 200:
            raise CaseError("uploader id is longer than 200 characters")
        item, mime = self._prepare(item)
        vault_id = item.vault_item_id
        if vault_id is None and item.media is not None and self.vault is not None:
            vault_id = self.vault.put(item.media, sha256=item.sha256, reason=f"review queue {queue}",
                                      content_type=mime, actor=submitted_by)
        group_key = (f"uploader:{queue}:{uploader_id}" if uploader_id
                     else f"content:{queue}:{item.sha256 or item.md5 or item.pdq}")
        now = utcnow()
        with self.db.session() as s:
            c = s.scalar(select(Case).where(Case.group_key == group_key, Case.status.in_(OPEN_STATUSES))
                         .order_by(Case.id).limit(1))
            joined = c is not None
            if c is None:
                c = Case(status="open", queue=queue, priority=priority, uploader_id=uploader_id,
                         group_key=group_key, source=source, submitted_by=submitted_by, note=note[:4000],
                         created_at=now, updated_at=now,
                         sla_due_at=now + timedelta(hours=sla_hours_for(priority)))
                s.add(c)
                s.flush()
            else:
                n = s.scalar(select(func.count()).select_from(CaseItem).where(CaseItem.case_id == c.id)) or 0
                if n >= MAX_ITEMS_PER_CASE:
                    raise CaseConflict(f"case {c.id} already holds {MAX_ITEMS_PER_CASE} items")
                if priority > c.priority:  # a more urgent content makes the whole case more urgent
                    c.priority = priority
                    c.sla_due_at = min(_aware(c.sla_due_at), now + timedelta(hours=sla_hours_for(priority)))
                c.note = _add_note(c.note, note)
                c.updated_at = now
            same = None
            if item.sha256:
                same = s.scalar(select(CaseItem).where(CaseItem.case_id == c.id,
                                                       CaseItem.content_sha256 == item.sha256))
            if same is None:
                s.add(CaseItem(case_id=c.id, content_sha256=item.sha256, content_type=item.content_type,
                               media_type=mime, md5=item.md5, pdq=item.pdq, pdq_quality=item.pdq_quality,
                               matches=item.matches, evidence=item.evidence, vault_item_id=vault_id,
                               added_at=now))
            elif vault_id and not same.vault_item_id:
                same.vault_item_id, same.media_type = vault_id, mime
            s.flush()
            if item.matches:  # exchanges whose entries matched are owed "pending review" (issue 13)
                from consentry.exchanges.feedback import review_hook

                review_hook(s, "case", c.id, item.matches)
            AuditLog(self.db).record("case.item_added" if joined else "case.created", submitted_by,
                         {"case_id": c.id, "queue": queue, "priority": c.priority, "source": source,
                          "uploader_id": uploader_id, "sha256": item.sha256, "vaulted": vault_id is not None},
                         session=s)
            return self._load(s, c.id)

    # ------------------------------------------------------------------ read
    def _load(self, s: Session, case_id: int) -> CaseInfo:
        c = _get(s, Case, case_id, "case")
        items = list(s.scalars(select(CaseItem).where(CaseItem.case_id == case_id).order_by(CaseItem.id)))
        decisions = list(s.scalars(select(Decision).where(Decision.case_id == case_id).order_by(Decision.id)))
        return _case_info(c, len(items), items, decisions)

    def get(self, case_id: int) -> CaseInfo:
        with self.db.session() as s:
            return self._load(s, case_id)

    def list_queue(self, *, queue: str | None = None, statuses: Sequence[str] = OPEN_STATUSES,
                   limit: int = 100, offset: int = 0) -> list[CaseInfo]:
        """Cases to review: highest priority first, then the earliest SLA, then the oldest."""
        with self.db.session() as s:
            counts = (select(CaseItem.case_id, func.count().label("n")).group_by(CaseItem.case_id).subquery())
            q = (select(Case, func.coalesce(counts.c.n, 0)).outerjoin(counts, counts.c.case_id == Case.id)
                 .where(Case.status.in_(list(statuses))))
            if queue:
                q = q.where(Case.queue == queue)
            q = q.order_by(Case.priority.desc(), Case.sla_due_at, Case.id)
            q = q.offset(max(0, offset)).limit(max(1, min(limit, 1000)))
            return [_case_info(c, int(n)) for c, n in s.execute(q)]

    def counts_by_status(self) -> dict[str, int]:
        with self.db.session() as s:
            return {st: int(n) for st, n in s.execute(select(Case.status, func.count()).group_by(Case.status))}

    def item(self, item_id: int) -> ItemInfo:
        with self.db.session() as s:
            return _item_info(_get(s, CaseItem, item_id, "case item"))

    def _vaulted(self, item_id: int) -> tuple[bytes, Any]:
        """The decrypted bytes of an item and what their magic bytes say they are."""
        from consentry.media.sniff import SNIFF_BYTES, sniff

        info = self.item(item_id)
        if info.vault_item_id is None or self.vault is None:
            raise CaseNotFound("no media kept for this item (the evidence vault is off or it was not stored)")
        data = self.vault.get(info.vault_item_id)
        return data, sniff(data[:SNIFF_BYTES])

    def media(self, item_id: int) -> tuple[bytes, str]:
        """The vaulted bytes of an item and a safe media type to serve them with (from the bytes
        themselves, so an item stored without its media type is still served as what it is)."""
        data, sniffed = self._vaulted(item_id)
        mime = sniffed.mime if sniffed.mime in SAFE_MEDIA_TYPES else "application/octet-stream"
        return data, mime

    def preview(self, item_id: int, side: int = 480) -> bytes:
        """A blurred, greyscale JPEG of an item's photo, made on the server: what the console shows
        until a reviewer reveals the item (the clear bytes never reach the browser before that)."""
        from consentry.media.image import load_image
        from consentry.media.sniff import PHOTO
        from consentry.media.thumbnail import thumbnail_jpeg

        from consentry.media.sniff import VIDEO

        data, sniffed = self._vaulted(item_id)
        if sniffed.content_type == VIDEO:  # a contact sheet of blurred keyframes (review/contact_sheet.py)
            from consentry.review.contact_sheet import contact_sheet_jpeg
            try:
                return contact_sheet_jpeg(data, self.limits, side)
            except ConsentryError as exc:
                raise CaseNotFound(f"no preview for this video: {exc}") from None
        if sniffed.content_type != PHOTO:
            raise CaseNotFound("no preview for this item (not a photo or video)")
        try:
            return thumbnail_jpeg(load_image(data, self.limits), side, blurred=True, quality=60)
        except ConsentryError as exc:  # corrupt or unreadable bytes
            raise CaseNotFound(f"no preview for this item: {exc}") from None

    def pending_approvals(self, *, exclude_reviewer: str | None = None, limit: int = 100) -> list[DecisionInfo]:
        with self.db.session() as s:
            q = select(Decision).where(Decision.status == "pending_second_review")
            if exclude_reviewer:
                q = q.where(Decision.reviewer != exclude_reviewer)
            return [_decision_info(d) for d in s.scalars(q.order_by(Decision.id).limit(limit))]

    # --------------------------------------------------------- claim/release
    def claim(self, case_id: int, reviewer: str) -> CaseInfo:
        """Claim a case for ``claim_minutes`` (renewed by the holder; refused while another holds it)."""
        now = utcnow()
        with self.db.session() as s:
            c = self._locked(s, case_id)
            if c.status == "decided":
                raise CaseConflict(f"case {case_id} is already decided")
            holder = _case_info(c).claim_holder(now)
            if holder and holder != reviewer:
                raise CaseConflict(f"case {case_id} is claimed by {holder} until "
                                   f"{_aware(c.claim_expires_at):%H:%M} UTC")
            c.claimed_by, c.claimed_at = reviewer, (c.claimed_at if holder == reviewer else now)
            c.claim_expires_at = now + timedelta(minutes=self.claim_minutes)
            if c.status == "open":
                c.status = "claimed"
            c.updated_at = now
            s.flush()
            return self._load(s, case_id)

    def release(self, case_id: int, reviewer: str, *, force: bool = False) -> CaseInfo:
        now = utcnow()
        with self.db.session() as s:
            c = self._locked(s, case_id)
            holder = _case_info(c).claim_holder(now)
            if holder and holder != reviewer and not force:
                raise CaseConflict(f"case {case_id} is claimed by {holder}")
            c.claimed_by = c.claimed_at = c.claim_expires_at = None
            if c.status == "claimed":
                c.status = "open"
            c.updated_at = now
            s.flush()
            return self._load(s, case_id)

    def split(self, case_id: int, item_ids: Sequence[int], reviewer: str) -> CaseInfo:
        """Move some items of a grouped case into a new case (same queue, uploader, priority, SLA),
        claimed by ``reviewer``, so they can be decided apart from the rest (bulk decisions on a
        selection). Returns the new case; splitting off every item is refused."""
        wanted = {int(i) for i in item_ids}
        now = utcnow()
        with self.db.session() as s:
            c = self._locked(s, case_id)
            if c.status not in ("open", "claimed", "escalated"):
                raise CaseConflict(f"case {case_id} is {c.status}: its items cannot be split off")
            holder = _case_info(c).claim_holder(now)
            if holder and holder != reviewer:
                raise CaseConflict(f"case {case_id} is claimed by {holder}")
            items = list(s.scalars(select(CaseItem).where(CaseItem.case_id == case_id)))
            moving = [i for i in items if i.id in wanted]
            if not moving or len(moving) != len(wanted):
                raise CaseError("choose items of this case to split off")
            if len(moving) == len(items):
                raise CaseError("all items are selected: decide the whole case instead")
            new = Case(status="claimed", queue=c.queue, priority=c.priority, uploader_id=c.uploader_id,
                       group_key=c.group_key, source=c.source, submitted_by=c.submitted_by,
                       note=_add_note(c.note, f"split from case {case_id} by {reviewer}"),
                       created_at=c.created_at, updated_at=now, sla_due_at=c.sla_due_at, claimed_by=reviewer,
                       claimed_at=now, claim_expires_at=now + timedelta(minutes=self.claim_minutes))
            s.add(new)
            s.flush()
            for i in moving:
                i.case_id = new.id
            c.updated_at = now
            s.flush()
            AuditLog(self.db).record("case.split", reviewer, {"case_id": case_id, "new_case_id": new.id,
                                                              "items": sorted(wanted)}, session=s)
            return self._load(s, new.id)

    def _for_update(self, s: Session, model: Any, row_id: int, what: str) -> Any:
        """The row ``row_id`` of ``model``, locked until commit on PostgreSQL; CaseNotFound if none."""
        q = select(model).where(model.id == row_id)
        if self.db.dialect == "postgresql":
            q = q.with_for_update()
        row = s.scalar(q)
        if row is None:
            raise CaseNotFound(f"no {what} {row_id}")
        return row

    def _locked(self, s: Session, case_id: int) -> Case:
        return self._for_update(s, Case, case_id, "case")

    # -------------------------------------------------------------- decide
    def decide(self, case_id: int, reviewer: str, kind: str, *, bank: str | None = None, note: str = "",
               role: str = "moderator") -> DecisionInfo:
        """Record a decision; bank additions are applied now, or after a second review for shared banks."""
        if kind not in ("confirm", "dismiss", "escalate"):
            raise CaseError("decision must be confirm, dismiss or escalate")
        bank = (bank or "").strip() or None
        target = None
        if kind == "confirm":
            if not bank:
                raise CaseError("confirm needs a bank to add the hashes to")
            target = self.banks.get_bank(bank)
            if target.kind == "allow":
                raise CaseError(f"bank {bank!r} is an allow bank; confirm adds to a bank of known material")
        elif kind == "dismiss" and bank:
            target = self.banks.get_bank(bank)
            if target.kind != "allow":
                raise CaseError(f"dismiss can only add to an allow bank; {bank!r} is "
                                f"{article(target.kind)} {target.kind} bank")
        elif kind == "escalate":
            bank = None
        now = utcnow()
        needs_second = target is not None and target.shared
        with self.db.session() as s:
            c = self._locked(s, case_id)
            if c.status == "decided":
                raise CaseConflict(f"case {case_id} is already decided")
            if c.status == "pending_approval":
                raise CaseConflict(f"case {case_id} has a decision waiting for a second reviewer")
            if c.status == "escalated" and role not in SENIOR_ROLES:
                raise CaseConflict(f"case {case_id} is escalated: a curator or admin decides it")
            holder = _case_info(c).claim_holder(now)
            if holder and holder != reviewer:
                raise CaseConflict(f"case {case_id} is claimed by {holder}")
            items = list(s.scalars(select(CaseItem).where(CaseItem.case_id == case_id).order_by(CaseItem.id)))
            d = Decision(case_id=case_id, reviewer=reviewer, kind=kind, bank=bank, note=(note or "")[:4000],
                         created_at=now, result={})
            if kind == "escalate":
                d.status, d.applied_at = "applied", now
                d.result = {"previous_status": c.status, "previous_priority": c.priority}
                c.status = "escalated"
                c.priority = max(c.priority, 80)
                c.claimed_by = c.claimed_at = c.claim_expires_at = None
            elif needs_second:
                d.status = "pending_second_review"
                c.status = "pending_approval"
                c.claimed_by = c.claimed_at = c.claim_expires_at = None
            else:
                d.result = self._add_to_bank(bank, items, reviewer, case_id) if bank else {}
                d.status, d.applied_at = "applied", now
                c.status, c.decided_at = "decided", now
                c.claimed_by = c.claimed_at = c.claim_expires_at = None
            c.updated_at = now
            s.add(d)
            s.flush()
            if d.status == "applied" and kind in ("confirm", "dismiss"):  # exchange feedback (issue 13),
                from consentry.exchanges.feedback import review_hook  # sent after the undo window

                review_hook(s, "decision", case_id, d.id, kind, bank, items, delay=UNDO_SECONDS)
            AuditLog(self.db).record("decision", reviewer,
                         {"case_id": case_id, "decision_id": d.id, "kind": kind, "bank": bank,
                          "status": d.status, "entries": d.result.get("entries", []),
                          "items": [i.content_sha256 for i in items][:50]}, session=s)
            return _decision_info(d)

    def approve(self, decision_id: int, reviewer: str) -> DecisionInfo:
        """Second review of a shared-bank addition: a different reviewer applies it."""
        now = utcnow()
        with self.db.session() as s:
            d = self._pending(s, decision_id, reviewer)
            c = self._locked(s, d.case_id)
            items = list(s.scalars(select(CaseItem).where(CaseItem.case_id == d.case_id).order_by(CaseItem.id)))
            d.result = self._add_to_bank(d.bank, items, d.reviewer, d.case_id, approved_by=reviewer)
            d.status, d.second_reviewer, d.reviewed_at, d.applied_at = "applied", reviewer, now, now
            c.status, c.decided_at, c.updated_at = "decided", now, now
            s.flush()
            from consentry.exchanges.feedback import review_hook  # exchange feedback (issue 13)

            review_hook(s, "decision", d.case_id, d.id, d.kind, d.bank, items)
            AuditLog(self.db).record("decision.approved", reviewer,
                         {"case_id": d.case_id, "decision_id": d.id, "kind": d.kind, "bank": d.bank,
                          "first_reviewer": d.reviewer, "entries": d.result.get("entries", [])}, session=s)
            return _decision_info(d)

    def reject(self, decision_id: int, reviewer: str, note: str = "") -> DecisionInfo:
        """Second review says no: nothing is added and the case goes back to the queue."""
        now = utcnow()
        with self.db.session() as s:
            d = self._pending(s, decision_id, reviewer)
            c = self._locked(s, d.case_id)
            d.status, d.second_reviewer, d.reviewed_at = "rejected", reviewer, now
            if note:
                d.note = ((d.note + "\n") if d.note else "") + f"[second review] {note[:2000]}"
            c.status, c.updated_at = "open", now
            s.flush()
            AuditLog(self.db).record("decision.rejected", reviewer,
                         {"case_id": d.case_id, "decision_id": d.id, "first_reviewer": d.reviewer}, session=s)
            return _decision_info(d)

    def decision(self, decision_id: int) -> DecisionInfo:
        with self.db.session() as s:
            return _decision_info(_get(s, Decision, decision_id, "decision"))

    def _undo_refusal(self, s: Session, d: Decision, reviewer: str, now: datetime) -> str | None:
        """Why ``reviewer`` cannot undo ``d`` now, or None when they can."""
        if d.reviewer != reviewer:
            return "only the reviewer who made a decision can undo it"
        if d.status not in ("applied", "pending_second_review") or d.second_reviewer:
            return (f"decision {d.id} cannot be undone ({d.status}"
                    f"{', approved by ' + d.second_reviewer if d.second_reviewer else ''})")
        if (now - _aware(d.created_at)).total_seconds() > UNDO_SECONDS:
            return (f"the undo window ({UNDO_SECONDS} s) has passed; "
                    "ask a curator to withdraw the entries instead")
        later = s.scalar(select(func.count()).select_from(Decision)
                         .where(Decision.case_id == d.case_id, Decision.id > d.id)) or 0
        if later:
            return f"case {d.case_id} has a later decision; this one can no longer be undone"
        return None

    def undoable(self, decision_id: int, reviewer: str, now: datetime | None = None) -> float:
        """Seconds left to undo a decision (0 when it cannot be undone by ``reviewer``)."""
        now = now or utcnow()
        with self.db.session() as s:
            d = s.get(Decision, decision_id)
            if d is None or self._undo_refusal(s, d, reviewer, now) is not None:
                return 0.0
            return max(0.0, UNDO_SECONDS - (now - _aware(d.created_at)).total_seconds())

    def undo(self, decision_id: int, reviewer: str, *, note: str = "", now: datetime | None = None) -> DecisionInfo:
        """Take back one's own decision within :data:`UNDO_SECONDS`: the decision is marked
        ``undone``, every bank entry it created is withdrawn (so the next match no longer finds it)
        and the case is reopened. Audited as ``decision.undone``."""
        now = now or utcnow()
        with self.db.session() as s:
            d = self._for_update(s, Decision, decision_id, "decision")
            refusal = self._undo_refusal(s, d, reviewer, now)
            if refusal is not None:
                raise CaseConflict(refusal)
            c = self._locked(s, d.case_id)
            result = dict(d.result or {})
            withdrawn: list[int] = []
            for entry_id in result.get("created", []) if d.status == "applied" and d.bank else []:
                try:
                    self.banks.set_status(d.bank, "withdrawn", entry_id=int(entry_id),
                                          actor=f"reviewer:{reviewer} (undo)")
                    withdrawn.append(int(entry_id))
                except NotFound:  # the bank or entry went away meanwhile: nothing left to withdraw
                    continue
            if d.kind == "escalate":
                c.priority = int(result.get("previous_priority", c.priority))
            result.update({"undone_at": _iso(now), "withdrawn": withdrawn, "status_before_undo": d.status})
            d.result = result
            d.status = "undone"
            from consentry.exchanges.feedback import review_hook  # its queued feedback is not sent

            review_hook(s, "undo", d.id)
            if note:
                d.note = ((d.note + "\n") if d.note else "") + f"[undo] {note[:2000]}"
            c.status, c.decided_at, c.updated_at = "open", None, now
            c.claimed_by = c.claimed_at = c.claim_expires_at = None
            s.flush()
            AuditLog(self.db).record("decision.undone", reviewer,
                                     {"case_id": d.case_id, "decision_id": d.id, "kind": d.kind, "bank": d.bank,
                                      "withdrawn": withdrawn}, session=s)
            return _decision_info(d)

    def _pending(self, s: Session, decision_id: int, reviewer: str) -> Decision:
        d = self._for_update(s, Decision, decision_id, "decision")
        if d.status != "pending_second_review":
            raise CaseConflict(f"decision {decision_id} is not waiting for a second review ({d.status})")
        if d.reviewer == reviewer:
            raise CaseConflict("four-eyes: the second review must be done by a different reviewer")
        return d

    def _add_to_bank(self, bank: str, items: Sequence[CaseItem], reviewer: str, case_id: int,
                     approved_by: str | None = None) -> dict[str, Any]:
        """Add the items' PDQ and MD5 to ``bank`` (idempotent). Returns the entry ids."""
        entries: list[int] = []
        created: list[int] = []  # new (or revived) by this decision: what an undo withdraws
        skipped: list[str] = []
        tags = ["review"] + ([f"approved-by:{approved_by}"] if approved_by else [])
        for it in items:
            signals = []
            if it.pdq:
                signals.append(("pdq", it.pdq, it.pdq_quality))
            if it.md5:
                signals.append(("md5", it.md5, None))
            if not signals and it.content_sha256:
                signals.append(("sha256", it.content_sha256, None))
            for signal_type, value, quality in signals:
                try:
                    entry, _created = self.banks.add_entry(
                        bank, signal_type, value, quality=quality, source="review",
                        external_ids=[f"case:{case_id}"], tags=tags,
                        meta={"case_id": case_id, "item_id": it.id}, added_by=f"reviewer:{reviewer}")
                except BankError as exc:
                    if isinstance(exc, NotFound):
                        raise
                    skipped.append(f"{signal_type}: {exc}")
                    continue
                entries.append(entry.id)
                if _created:
                    created.append(entry.id)
                if signal_type == "pdq":
                    self._store_variants(bank, it, value)
        return {"entries": entries, "created": created, "skipped": skipped}

    def _store_variants(self, bank: str, item: CaseItem, pdq: str) -> None:
        """With the picture kept in the vault, the confirmed entry also gets its stored-side
        canonical hashes (crops, rotations, borderless copy: issue 21), so re-uploads cropped or
        straightened later still meet it. Best effort: the entry stands without them."""
        if self.vault is None or not item.vault_item_id:
            return
        from consentry.hashing import hash_content, stored_variants
        from consentry.media.content import Content

        try:
            content = Content.from_bytes(self.vault.get(item.vault_item_id), MediaLimits.from_env())
            result = hash_content(content)
            if result.pdq == pdq:  # the vaulted bytes are the picture the entry was hashed from
                self.banks.set_variants(bank, pdq, stored_variants(content, result))
        except Exception as exc:  # noqa: BLE001 - a missing/purged blob or odd media: no variants
            log.warning("no stored variants for case item %s: %s", item.id, type(exc).__name__)
