"""Notices: receive, validate, resolve, open a case with the clock, decide, sweep, state reasons.

One class (:class:`NoticeService`) for the public form, ``POST /v1/notices``, the CLI and the
console. The flow:

1. :meth:`submit` checks the fields (sizes and formats: :class:`NoticeInvalid` names each bad
   field) and which required ones are missing for the regime. A notice missing fields but giving a
   way to contact the notifier is kept as ``incomplete`` with a contact-step token (its clock does
   not start); without any contact it is refused, naming what is missing.
2. Locations (URLs or content ids) are resolved to ledger content (hashes, uploader); an attached
   image is hashed (its bytes go to the evidence vault only when the vault is on).
3. A complete notice starts its clock (``valid_at``, ``due_at``, ``escalate_at``) and opens a case
   in the ``notices`` queue whose SLA is the due time — unless it names content an earlier notice
   named (same resolved content id or same image): then it is a ``duplicate`` joining that case.
4. :meth:`decide` records the decision with its ground (legal/policy, the law or clause) and
   whether automation was used. A removal adds the hashes to the notices bank through the case
   (so the next upload is blocked too) and runs the identical-copy sweep now; the sweep's findings
   are kept as ``notice_events`` (kind ``sweep``) — the record of reasonable efforts — and copies
   later deleted from the ledger are recorded as ``removed``. Every restricted content gets a
   statement of reasons.
5. :meth:`escalate_due` raises the case priority of notices whose escalation time has come.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import func, or_, select

from consentry.banks.service import as_utc
from consentry.db.models import utcnow
from consentry.db.models_notices import Notice, NoticeEvent, NoticeLocation, StatementOfReasons
from consentry.db.models_review import Case, CaseItem
from consentry.db.session import Database
from consentry.errors import ConsentryError
from consentry.notices.regimes import CATEGORIES, NoticeConfig
from consentry.notices.statements import Ground, StatementService

log = logging.getLogger("consentry.notices")

MAX_LOCATIONS = 50
MAX_IMAGE_BYTES = 20 * 1024 * 1024
DECISIONS = ("remove", "disable", "no_action")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{1,63}$")
_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"  # no 0/O, 1/I/L, U


class NoticeError(ConsentryError):
    code = "notice_error"


class NoticeInvalid(NoticeError):
    """The notice cannot be accepted: ``problems`` names each field and what is wrong."""

    code = "invalid_notice"

    def __init__(self, message: str, problems: dict[str, str]):
        super().__init__(message)
        self.problems = problems


class NoticeNotFound(NoticeError):
    code = "not_found"


_aware = as_utc  # SQLite hands back naive UTC datetimes


def _iso(dt: datetime | None) -> str | None:
    dt = _aware(dt)
    return dt.isoformat() if dt else None


def new_number() -> str:
    return "N-" + "-".join("".join(secrets.choice(_ALPHABET) for _ in range(4)) for _ in range(3))


def token_hash(token: str) -> str:
    return hashlib.sha256(("consentry-notice\x00" + token).encode()).hexdigest()


@dataclass
class NoticeInput:
    """What a notifier sends (the form, the API or the CLI)."""

    regime: str
    locations: list[str] = field(default_factory=list)
    category: str = "ncii"
    signature: str | None = None
    notifier_name: str | None = None
    notifier_email: str | None = None
    notifier_contact: str | None = None
    explanation: str | None = None
    good_faith: bool = False
    image: bytes | None = None
    lang: str = "en"

    def fields(self) -> dict[str, Any]:
        return {"regime": self.regime, "locations": self.locations, "category": self.category,
                "signature": self.signature, "notifier_name": self.notifier_name,
                "notifier_email": self.notifier_email, "notifier_contact": self.notifier_contact,
                "explanation": self.explanation, "good_faith": self.good_faith}


def _clean_text(value: Any, name: str, limit: int, problems: dict[str, str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        problems[name] = "must be text"
        return None
    value = value.strip()
    if len(value) > limit:
        problems[name] = f"at most {limit} characters"
        return None
    return value or None


def check_input(inp: NoticeInput, config: NoticeConfig) -> NoticeInput:
    """Sizes and formats (not completeness): raises :class:`NoticeInvalid` naming each field."""
    problems: dict[str, str] = {}
    if inp.regime not in config.regimes:
        problems["regime"] = f"one of {', '.join(config.regimes)}"
    if inp.category not in CATEGORIES:
        problems["category"] = f"one of {', '.join(CATEGORIES)}"
    locs = inp.locations
    if isinstance(locs, str):
        locs = [x for x in re.split(r"[\r\n]+", locs)]
    if not isinstance(locs, list) or not all(isinstance(x, str) for x in locs):
        problems["locations"] = "a list of URLs or content ids"
        locs = []
    locs = list(dict.fromkeys(x.strip() for x in locs if x and x.strip()))
    if len(locs) > MAX_LOCATIONS:
        problems["locations"] = f"at most {MAX_LOCATIONS} locations in one notice"
    elif any(len(x) > 4000 for x in locs):
        problems["locations"] = "each location at most 4000 characters"
    out = NoticeInput(inp.regime, locs, inp.category,
                      _clean_text(inp.signature, "signature", 300, problems),
                      _clean_text(inp.notifier_name, "notifier_name", 300, problems),
                      _clean_text(inp.notifier_email, "notifier_email", 320, problems),
                      _clean_text(inp.notifier_contact, "notifier_contact", 500, problems),
                      _clean_text(inp.explanation, "explanation", 10_000, problems),
                      inp.good_faith is True, inp.image, (inp.lang or "en")[:8])
    if out.notifier_email and not _EMAIL.match(out.notifier_email):
        problems["notifier_email"] = "not an e-mail address"
    if inp.image is not None and len(inp.image) > MAX_IMAGE_BYTES:
        problems["image"] = f"at most {MAX_IMAGE_BYTES // (1024 * 1024)} MB"
    if problems:
        raise NoticeInvalid("the notice is not valid: " + "; ".join(f"{k}: {v}" for k, v in problems.items()),
                            problems)
    return out


@dataclass
class Receipt:
    """The acknowledgement: the notice number, its state, and (incomplete) the contact-step token."""

    number: str
    status: str
    missing: list[str]
    received_at: datetime
    due_at: datetime | None
    completion_token: str | None = None
    duplicate_of: str | None = None
    case_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = {"number": self.number, "status": self.status, "missing": self.missing,
             "received_at": _iso(self.received_at), "due_at": _iso(self.due_at), "duplicate_of": self.duplicate_of}
        if self.completion_token:
            d["completion_token"] = self.completion_token
        return d


class NoticeService:
    def __init__(self, db: Database, *, config: NoticeConfig | None = None, cases: Any = None, sweeper: Any = None,
                 vault: Any = None, banks: Any = None, ledger: Any = None, limits: Any = None):
        from consentry.banks.service import BankService
        from consentry.config import MediaLimits
        from consentry.ledger import LedgerService
        from consentry.review.cases import CaseService

        self.db = db
        self.config = config or NoticeConfig()
        self.banks = banks or BankService(db)
        self.cases = cases or CaseService(db, self.banks, vault=vault)
        self.vault = vault if vault is not None else getattr(self.cases, "vault", None)
        self.sweeper = sweeper
        self.ledger = ledger or (sweeper.ledger if sweeper is not None else LedgerService(db))
        self.limits = limits or MediaLimits()
        self.statements = StatementService(db, redress=self.config.redress)

    # ------------------------------------------------------------------ receive
    def submit(self, inp: NoticeInput, *, channel: str, submitted_by: str, now: datetime | None = None) -> Receipt:
        inp = check_input(inp, self.config)
        regime = self.config.regime(inp.regime)
        now = now or utcnow()
        image = self._hash_image(inp.image) if inp.image else {}
        fields = {**inp.fields(), "image_sha256": image.get("sha256")}
        missing = regime.missing(fields)
        if missing and not (inp.notifier_email or inp.notifier_contact):
            raise NoticeInvalid("the notice is missing: " + ", ".join(missing)
                                + (" (and gives no contact, so we cannot ask for the rest)"
                                   if "contact" not in missing else ""),
                                {m: "required" for m in missing})
        resolved = [(loc, self.ledger.resolve(loc, include_deleted=True)) for loc in inp.locations]
        number = new_number()
        vault_id = None
        if inp.image and self.vault is not None and image.get("sha256"):
            vault_id = self.vault.put(inp.image, sha256=image["sha256"], reason=f"notice {number}",
                                      content_type=image.get("mime"), actor=f"notice:{number}")
        token = secrets.token_urlsafe(24) if missing else None
        from consentry.review.audit import AuditLog

        with self.db.session() as s:
            n = Notice(number=number, regime=regime.name, status="incomplete" if missing else "open", channel=channel,
                       submitted_by=submitted_by[:200], category=inp.category, notifier_name=inp.notifier_name,
                       notifier_email=inp.notifier_email, notifier_contact=inp.notifier_contact,
                       signature=inp.signature, explanation=inp.explanation, good_faith=inp.good_faith,
                       lang=inp.lang, missing=missing, completion_hash=token_hash(token) if token else None,
                       image_sha256=image.get("sha256"), image_md5=image.get("md5"), image_pdq=image.get("pdq"),
                       image_vault_item_id=vault_id, received_at=now, automated=False, updated_at=now)
            s.add(n)
            s.flush()
            for loc, c in resolved:
                s.add(NoticeLocation(notice_id=n.id, location=loc, resolved=c is not None,
                                     content_id=c.content_id if c else None, url=c.url if c else None,
                                     uploader_id=c.uploader_id if c else None, sha256=c.sha256 if c else None,
                                     md5=c.md5 if c else None, pdq=c.pdq if c else None))
            self._event(s, n, "received", submitted_by, {"channel": channel, "regime": regime.name,
                                                         "locations": len(resolved),
                                                         "resolved": sum(1 for _, c in resolved if c),
                                                         "image": bool(image)}, now)
            AuditLog(self.db).record("notice.received", submitted_by, {"notice": number, "regime": regime.name,
                                                                       "status": n.status}, session=s)
            if missing:
                self._event(s, n, "incomplete", "system", {"missing": missing}, now)
            else:
                self._activate(s, n, now)
            s.flush()
            dup = s.get(Notice, n.duplicate_of).number if n.duplicate_of else None
            return Receipt(number, n.status, list(missing), now, n.due_at, token, dup, n.case_id)

    def complete(self, number: str, values: dict[str, Any], *, token: str | None = None, actor: str = "notifier",
                 now: datetime | None = None) -> Receipt:
        """The contact step: fill in what was missing (public form: with the token given at submission)."""
        now = now or utcnow()
        with self.db.session() as s:
            n = self._row(s, number, lock=True)
            if n.status != "incomplete":
                raise NoticeError(f"notice {number} is not waiting for anything ({n.status})")
            if token is not None and (not n.completion_hash or
                                      not secrets.compare_digest(n.completion_hash, token_hash(token))):
                raise NoticeNotFound(f"no notice {number} waiting with this code")
            current = NoticeInput(n.regime, [loc.location for loc in self._locations(s, n.id)], n.category,
                                  n.signature, n.notifier_name, n.notifier_email, n.notifier_contact, n.explanation,
                                  n.good_faith, None, n.lang)
            for k in ("signature", "notifier_name", "notifier_email", "notifier_contact", "explanation"):
                if values.get(k):
                    setattr(current, k, values[k])
            if values.get("good_faith") is True:
                current.good_faith = True
            new_locs = values.get("locations") or []
            if isinstance(new_locs, str):
                new_locs = re.split(r"[\r\n]+", new_locs)
            current.locations = current.locations + [x for x in new_locs if isinstance(x, str)]
            current = check_input(current, self.config)
            known = {loc.location for loc in self._locations(s, n.id)}
            for loc in current.locations:
                if loc not in known:
                    c = self.ledger.resolve(loc, include_deleted=True)
                    s.add(NoticeLocation(notice_id=n.id, location=loc, resolved=c is not None,
                                         content_id=c.content_id if c else None, url=c.url if c else None,
                                         uploader_id=c.uploader_id if c else None, sha256=c.sha256 if c else None,
                                         md5=c.md5 if c else None, pdq=c.pdq if c else None))
            for k in ("signature", "notifier_name", "notifier_email", "notifier_contact", "explanation", "good_faith"):
                setattr(n, k, getattr(current, k))
            missing = self.config.regime(n.regime).missing({**current.fields(), "image_sha256": n.image_sha256})
            n.missing, n.updated_at = missing, now
            s.flush()
            if missing:
                self._event(s, n, "incomplete", actor, {"missing": missing}, now)
            else:
                n.status, n.completion_hash = "open", None
                self._event(s, n, "completed", actor, {}, now)
                self._activate(s, n, now)
            s.flush()
            dup = s.get(Notice, n.duplicate_of).number if n.duplicate_of else None
            return Receipt(n.number, n.status, list(missing), n.received_at, n.due_at, None, dup, n.case_id)

    def _hash_image(self, data: bytes) -> dict[str, Any]:
        from consentry.hashing import hash_content
        from consentry.media.content import Content

        try:
            content = Content.from_bytes(data, self.limits)
            h = hash_content(content)
        except ConsentryError as exc:
            raise NoticeInvalid(f"image: {exc}", {"image": str(exc)}) from None
        if h.error:
            raise NoticeInvalid(f"image: {h.error}", {"image": h.error})
        return {"sha256": h.sha256, "md5": h.md5, "pdq": h.pdq, "pdq_quality": h.pdq_quality,
                "mime": content.sniffed.mime, "content_type": content.content_type}

    # ------------------------------------------------------------------ the clock and the case
    def _activate(self, s, n: Notice, now: datetime) -> None:
        """A complete notice: the clock starts; a case is opened or the first notice's case joined."""
        clock = self.config.regime(n.regime).clock
        n.valid_at, n.due_at, n.escalate_at = now, clock.due(now), clock.escalate_at(now)
        locs = self._locations(s, n.id)
        first = self._earlier_notice(s, n, locs)
        from consentry.review.audit import AuditLog

        if first is not None:
            n.status, n.duplicate_of, n.case_id = "duplicate", first.id, first.case_id
            self._event(s, n, "duplicate_joined", "system", {"first": first.number, "case_id": first.case_id}, now)
            self._event(s, first, "duplicate_joined", "system", {"duplicate": n.number}, now)
            if first.case_id:
                case = s.get(Case, first.case_id)
                if case is not None and case.status != "decided":
                    self._add_items(s, case, n, locs, now)
                    case.note = ((case.note or "") + f"\nduplicate notice {n.number} joined")[:4000]
                    case.sla_due_at = min(_aware(case.sla_due_at), n.due_at)
                    case.updated_at = now
            AuditLog(self.db).record("notice.duplicate", "system", {"notice": n.number, "first": first.number,
                                                                    "case_id": first.case_id}, session=s)
            return
        regime = self.config.regime(n.regime)
        uploader = next((loc.uploader_id for loc in locs if loc.uploader_id), None)
        case = Case(status="open", queue=self.config.queue, priority=self.config.priority, uploader_id=uploader,
                    group_key=f"notice:{n.number}", source="notice", submitted_by=f"notice:{n.number}",
                    note=f"{regime.title} {n.number} ({regime.law})", created_at=now, updated_at=now,
                    sla_due_at=n.due_at)
        s.add(case)
        s.flush()
        n.case_id = case.id
        self._add_items(s, case, n, locs, now)
        unresolved = [loc.location for loc in locs if not loc.resolved]
        if unresolved:
            case.note += "\nnot in the content ledger: " + ", ".join(unresolved)[:3000]
        self._event(s, n, "case_opened", "system", {"case_id": case.id, "due_at": _iso(n.due_at),
                                                    "unresolved": len(unresolved)}, now)
        AuditLog(self.db).record("case.created", f"notice:{n.number}",
                                 {"case_id": case.id, "queue": case.queue, "priority": case.priority,
                                  "source": "notice", "notice": n.number}, session=s)

    def _add_items(self, s, case: Case, n: Notice, locs: Sequence[NoticeLocation], now: datetime) -> None:
        items = s.scalars(select(CaseItem).where(CaseItem.case_id == case.id))
        have = {(i.content_sha256, i.pdq, i.md5): i for i in items}
        info = self.ledger.resolve  # for the content type

        def add(sha, md5, pdq, ctype, evidence, vault_id=None):
            if not (sha or md5 or pdq):
                return
            same = have.get((sha, pdq, md5))
            if same is not None:  # already in the case: keep the bytes if this notice brought them
                if vault_id and not same.vault_item_id:
                    same.vault_item_id = vault_id
                return
            have[(sha, pdq, md5)] = item = CaseItem(
                case_id=case.id, content_sha256=sha, content_type=ctype, md5=md5, pdq=pdq, pdq_quality=None,
                matches=[], evidence=[evidence], vault_item_id=vault_id, added_at=now)
            s.add(item)

        for loc in locs:
            if loc.resolved:
                c = info(loc.content_id, include_deleted=True)
                ctype = c.content_type if c and c.content_type in ("photo", "video") else "photo"
                add(loc.sha256, loc.md5, loc.pdq, ctype,
                    {"kind": "notice", "notice": n.number, "content_id": loc.content_id, "url": loc.url})
        if n.image_sha256:
            add(n.image_sha256, n.image_md5, n.image_pdq, "photo",
                {"kind": "notice-image", "notice": n.number}, n.image_vault_item_id)

    def _earlier_notice(self, s, n: Notice, locs: Sequence[NoticeLocation]) -> Notice | None:
        ids = [loc.content_id for loc in locs if loc.content_id]
        conds = []
        if ids:
            conds.append(Notice.id.in_(select(NoticeLocation.notice_id).where(NoticeLocation.content_id.in_(ids))))
        if n.image_sha256:
            conds.append(Notice.image_sha256 == n.image_sha256)
        if not conds:
            return None
        return s.scalar(select(Notice).where(or_(*conds), Notice.id != n.id, Notice.status.in_(("open", "decided")))
                        .order_by(Notice.id).limit(1))

    def escalate_due(self, now: datetime | None = None) -> list[str]:
        """Escalate notices whose escalation time has come without a decision (priority 100)."""
        now = now or utcnow()
        from consentry.review.audit import AuditLog

        done = []
        with self.db.session() as s:
            rows = list(s.scalars(select(Notice).where(Notice.status == "open", Notice.escalated_at.is_(None),
                                                       Notice.escalate_at <= now).limit(500)))
            for n in rows:
                n.escalated_at, n.updated_at = now, now
                case = s.get(Case, n.case_id) if n.case_id else None
                if case is not None and case.status != "decided":
                    case.priority = 100
                    case.note = ((case.note or "") + f"\nescalated: notice {n.number} due {_iso(n.due_at)}")[:4000]
                    case.updated_at = now
                self._event(s, n, "escalated", "system", {"due_at": _iso(n.due_at)}, now)
                AuditLog(self.db).record("notice.escalated", "system", {"notice": n.number, "case_id": n.case_id,
                                                                        "due_at": _iso(n.due_at)}, session=s)
                log.warning("notice %s escalated: due %s", n.number, _iso(n.due_at))
                done.append(n.number)
        return done

    # ------------------------------------------------------------------ decide
    def decide(self, number: str, reviewer: str, decision: str, *, ground: Ground | None = None,
               automated: bool = False, automated_detection: bool | None = None, role: str = "moderator",
               note: str = "", now: datetime | None = None) -> dict[str, Any]:
        """Record the decision on a notice (and its case). ``remove``/``disable`` need a ``ground``."""
        if decision not in DECISIONS:
            raise NoticeError(f"decision must be one of {', '.join(DECISIONS)} (or reject the notice)")
        if decision != "no_action" and ground is None:
            raise NoticeError("a restriction needs its ground: legal (the law) or policy (the terms clause)")
        with self.db.session() as s:
            n = self._row(s, number)
            if n.status == "duplicate":
                first = s.get(Notice, n.duplicate_of)
                raise NoticeError(f"notice {number} joined notice {first.number}: decide that one")
            if n.status != "open":
                raise NoticeError(f"notice {number} is {n.status}")
            case_id, category = n.case_id, n.category
        bank = self._bank()
        dec = None
        if case_id is not None:
            case = self.cases.get(case_id)
            if case.status != "decided":
                kind = "dismiss" if decision == "no_action" else "confirm"
                dec = self.cases.decide(case_id, reviewer, kind, bank=bank if kind == "confirm" else None,
                                        note=f"notice {number}: {decision}" + (f" — {note}" if note else ""), role=role)
        now = now or utcnow()
        entries = list((dec.result or {}).get("entries", [])) if dec else []
        from consentry.review.audit import AuditLog

        with self.db.session() as s:
            n = self._row(s, number, lock=True)
            if n.status != "open":
                raise NoticeError(f"notice {number} is {n.status}")
            n.status, n.decision, n.decided_by, n.decided_at, n.updated_at = "decided", decision, reviewer, now, now
            n.automated = bool(automated)
            if ground is not None:
                n.decision_ground, n.decision_reference = ground.kind, ground.reference[:500]
                n.decision_explanation = (ground.explanation or "")[:10_000]
            self._event(s, n, "decided", reviewer, {"decision": decision, "ground": ground.kind if ground else None,
                                                    "reference": ground.reference if ground else None,
                                                    "automated": bool(automated), "entries": entries,
                                                    "case_decision": dec.id if dec else None,
                                                    "in_time": bool(n.due_at and now <= _aware(n.due_at))}, now)
            AuditLog(self.db).record("notice.decided", reviewer, {"notice": number, "decision": decision,
                                                                  "ground": ground.kind if ground else None,
                                                                  "automated": bool(automated)}, session=s)
        found: list[dict[str, Any]] = []
        if decision in ("remove", "disable") and entries and self.sweeper is not None:
            found = self._sweep(number, entries)
        if decision in ("remove", "disable"):
            self._statements(number, decision, ground, automated,
                             automated_detection if automated_detection is not None else False, category, found, now)
        return self.get(number)

    def reject(self, number: str, reviewer: str, reason: str, *, now: datetime | None = None) -> dict[str, Any]:
        """Reject an invalid or bad-faith notice, with the reason (logged and audited, never silent)."""
        reason = (reason or "").strip()
        if not reason:
            raise NoticeError("say why the notice is rejected")
        now = now or utcnow()
        from consentry.review.audit import AuditLog

        with self.db.session() as s:
            n = self._row(s, number, lock=True)
            if n.status in ("decided", "rejected"):
                raise NoticeError(f"notice {number} is already {n.status}")
            n.status, n.decision, n.rejection_reason = "rejected", "reject", reason[:4000]
            n.decided_by, n.decided_at, n.updated_at = reviewer, now, now
            case_id = n.case_id if n.duplicate_of is None else None
            self._event(s, n, "rejected", reviewer, {"reason": reason[:4000]}, now)
            AuditLog(self.db).record("notice.rejected", reviewer, {"notice": number, "reason": reason[:500]}, session=s)
        log.info("notice %s rejected by %s: %s", number, reviewer, reason[:200])
        if case_id is not None:
            case = self.cases.get(case_id)
            if case.status not in ("decided", "pending_approval"):
                self.cases.decide(case_id, reviewer, "dismiss", note=f"notice {number} rejected: {reason[:500]}",
                                  role="admin")
        return self.get(number)

    def _bank(self) -> str:
        from consentry.banks.service import NotFound

        try:
            return self.banks.get_bank(self.config.bank).name
        except NotFound:
            return self.banks.create_bank(self.config.bank, "ncii", actor="notices",
                                          description="hashes of content removed after a notice").name

    def _sweep(self, number: str, entries: list[int]) -> list[dict[str, Any]]:
        report = self.sweeper.sweep_entries(entries, trigger=f"notice:{number}")
        found = [{"content_id": h.content.content_id, "url": h.content.url, "uploader_id": h.content.uploader_id,
                  "content_type": h.content.content_type, "signal_type": h.signal_type, "distance": h.distance,
                  "transform": h.transform, "new": h.new, "action": h.action or {},
                  "content_date": h.content.created_at.date().isoformat() if h.content.created_at else None}
                 for h in report.hits]
        found = list({f["content_id"]: f for f in found}.values())
        with self.db.session() as s:
            n = self._row(s, number)
            self._event(s, n, "sweep", "sweeper", {"entries": entries, "found": found, "webhooks": report.webhooks,
                                                   "seconds": round(report.seconds, 3)}, utcnow())
        return found

    def _statements(self, number: str, decision: str, ground: Ground, automated: bool, detected: bool,
                    category: str, found: list[dict[str, Any]], now: datetime) -> None:
        restriction = "removal" if decision == "remove" else "disable"
        auto = "fully" if automated else "not_automated"
        with self.db.session() as s:
            n = self._row(s, number)
            source = "notice_dsa" if n.regime == "dsa_art16" else "notice_other"
            done: set[str] = set()
            for loc in self._locations(s, n.id):
                if not loc.resolved or loc.content_id in done:
                    continue
                done.add(loc.content_id)
                c = self.ledger.resolve(loc.content_id, include_deleted=True)
                row = self.statements.issue(
                    s, restriction=restriction, ground=ground, category=category,
                    content_type=c.content_type if c else None,
                    content_date=c.created_at.date() if c and c.created_at else None, source=source,
                    automated_detection=detected, automated_decision=auto, facts_kind="notice", notice_id=n.id,
                    case_id=n.case_id, content_id=loc.content_id, uploader_id=loc.uploader_id, now=now)
                self._event(s, n, "statement", "system", {"puid": row.puid, "content_id": loc.content_id}, now)
            for f in found:
                if f["content_id"] in done:
                    continue
                done.add(f["content_id"])
                row = self.statements.issue(
                    s, restriction=restriction, ground=ground, category=category, content_type=f.get("content_type"),
                    content_date=datetime.fromisoformat(f["content_date"]).date() if f.get("content_date") else None,
                    source="own_initiative", automated_detection=True,
                    automated_decision="partially" if not automated else "fully", facts_kind="sweep",
                    notice_id=n.id, case_id=n.case_id, content_id=f["content_id"], uploader_id=f.get("uploader_id"),
                    now=now)
                self._event(s, n, "statement", "system", {"puid": row.puid, "content_id": f["content_id"]}, now)

    # ------------------------------------------------------------------ read
    def _row(self, s, number: str, lock: bool = False) -> Notice:
        q = select(Notice).where(Notice.number == (number or "").strip().upper())
        if lock and self.db.dialect == "postgresql":
            q = q.with_for_update()
        n = s.scalar(q)
        if n is None:
            raise NoticeNotFound(f"no notice {number}")
        return n

    @staticmethod
    def _locations(s, notice_id: int) -> list[NoticeLocation]:
        return list(s.scalars(select(NoticeLocation).where(NoticeLocation.notice_id == notice_id)
                              .order_by(NoticeLocation.id)))

    @staticmethod
    def _event(s, n: Notice, kind: str, actor: str, detail: dict[str, Any], at: datetime) -> None:
        s.add(NoticeEvent(notice_id=n.id, at=at, kind=kind, actor=str(actor)[:200], detail=detail))

    def refresh_removals(self, number: str) -> None:
        """Record as ``removed`` each content the sweep (or the notice) found that has since left
        the ledger (the platform deleted it, e.g. after the ``content.matched`` webhook)."""
        with self.db.session() as s:
            n = self._row(s, number)
            events = list(s.scalars(select(NoticeEvent).where(NoticeEvent.notice_id == n.id)))
            removed = {e.detail.get("content_id") for e in events if e.kind == "removed"}
            wanted = {f["content_id"] for e in events if e.kind == "sweep" for f in e.detail.get("found", [])}
            wanted |= {loc.content_id for loc in self._locations(s, n.id) if loc.content_id}
            for cid in sorted(wanted - removed):
                c = self.ledger.resolve(cid, include_deleted=True)
                if c is not None and c.status == "deleted":
                    self._event(s, n, "removed", "platform", {"content_id": cid, "url": c.url,
                                                              "removed_at": _iso(c.updated_at)}, utcnow())

    def get(self, number: str, *, now: datetime | None = None) -> dict[str, Any]:
        """The notice as the console, the API and the CLI show it (with the notifier's details)."""
        now = now or utcnow()
        self.refresh_removals(number)
        with self.db.session() as s:
            n = self._row(s, number)
            first = s.get(Notice, n.duplicate_of) if n.duplicate_of else None
            locs = self._locations(s, n.id)
            events = list(s.scalars(select(NoticeEvent).where(NoticeEvent.notice_id == n.id).order_by(NoticeEvent.id)))
            dups = [r for r in s.scalars(select(Notice.number).where(Notice.duplicate_of == n.id).order_by(Notice.id))]
            puids = list(s.scalars(select(StatementOfReasons.puid).where(StatementOfReasons.notice_id == n.id)
                                   .order_by(StatementOfReasons.id)))
            clock = self.config.regime(n.regime).clock
            return {
                "number": n.number, "regime": n.regime, "status": n.status, "category": n.category,
                "channel": n.channel, "submitted_by": n.submitted_by, "lang": n.lang,
                "notifier": {"name": n.notifier_name, "email": n.notifier_email, "contact": n.notifier_contact,
                             "signature": n.signature},
                "explanation": n.explanation, "good_faith": n.good_faith, "missing": list(n.missing or []),
                "image": {"sha256": n.image_sha256, "pdq": n.image_pdq, "kept": n.image_vault_item_id is not None}
                if n.image_sha256 else None,
                "locations": [{"location": loc.location, "resolved": loc.resolved, "content_id": loc.content_id,
                               "url": loc.url} for loc in locs],
                "received_at": _iso(n.received_at), "valid_at": _iso(n.valid_at), "due_at": _iso(n.due_at),
                "escalate_at": _iso(n.escalate_at), "escalated_at": _iso(n.escalated_at),
                "clock": clock.state(_aware(n.valid_at), now, decided_at=_aware(n.decided_at)),
                "case_id": n.case_id, "duplicate_of": first.number if first else None, "duplicates": dups,
                "decision": {"decision": n.decision, "ground": n.decision_ground, "reference": n.decision_reference,
                             "explanation": n.decision_explanation, "automated": n.automated,
                             "decided_by": n.decided_by, "decided_at": _iso(n.decided_at),
                             "rejection_reason": n.rejection_reason} if n.decision else None,
                "efforts": _efforts(events), "statements": puids,
                "events": [{"at": _iso(e.at), "kind": e.kind, "actor": e.actor,
                            "detail": {k: v for k, v in (e.detail or {}).items() if k != "found"}} for e in events],
            }

    def list(self, *, status: str | None = None, regime: str | None = None, limit: int = 100,
             offset: int = 0, now: datetime | None = None) -> list[dict[str, Any]]:
        now = now or utcnow()
        with self.db.session() as s:
            q = select(Notice)
            if status:
                q = q.where(Notice.status == status)
            if regime:
                q = q.where(Notice.regime == regime)
            rows = list(s.scalars(q.order_by(Notice.due_at.is_(None), Notice.due_at, Notice.id)
                                  .offset(max(0, offset)).limit(max(1, min(limit, 1000)))))
            return [{"number": n.number, "regime": n.regime, "status": n.status, "category": n.category,
                     "received_at": _iso(n.received_at), "due_at": _iso(n.due_at), "case_id": n.case_id,
                     "decision": n.decision,
                     "clock": self.config.regime(n.regime).clock.state(_aware(n.valid_at), now,
                                                                       decided_at=_aware(n.decided_at))}
                    for n in rows]

    def counts(self) -> dict[str, int]:
        with self.db.session() as s:
            return {k: int(v) for k, v in s.execute(select(Notice.status, func.count()).group_by(Notice.status))}

    def summary_for_case(self, case_id: int, *, now: datetime | None = None) -> dict[str, Any] | None:
        """For the console's case page: the notice(s) behind a case, the clock (SLA colour), the
        decision and the efforts record — or None when the case did not come from a notice."""
        with self.db.session() as s:
            first = s.scalar(select(Notice.number).where(Notice.case_id == case_id, Notice.duplicate_of.is_(None))
                             .order_by(Notice.id).limit(1))
        if first is None:
            return None
        d = self.get(first, now=now)
        return {"number": d["number"], "regime": d["regime"], "status": d["status"], "category": d["category"],
                "clock": d["clock"], "due_at": d["due_at"], "escalated_at": d["escalated_at"],
                "duplicates": d["duplicates"], "locations": d["locations"], "decision": d["decision"],
                "efforts": d["efforts"], "statements": d["statements"],
                "decide": {"decisions": list(DECISIONS), "grounds": ["legal", "policy"]}}


def _efforts(events: Sequence[NoticeEvent]) -> dict[str, Any]:
    """The reasonable-efforts record: each sweep (when, what it found) and what was removed when."""
    sweeps = [{"at": _iso(e.at), "found": e.detail.get("found", []), "webhooks": e.detail.get("webhooks", 0)}
              for e in events if e.kind == "sweep"]
    removed = {e.detail.get("content_id"): e.detail.get("removed_at") for e in events if e.kind == "removed"}
    found = {f["content_id"]: f for sw in sweeps for f in sw["found"]}
    return {"sweeps": len(sweeps), "swept_at": sweeps[-1]["at"] if sweeps else None,
            "found": [{"content_id": cid, "url": f.get("url"), "signal_type": f.get("signal_type"),
                       "distance": f.get("distance"), "transform": f.get("transform"),
                       "removed_at": removed.get(cid)} for cid, f in found.items()],
            "removed": [{"content_id": cid, "removed_at": at} for cid, at in removed.items()]}
