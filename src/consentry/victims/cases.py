"""Victim cases: hashes submitted by a victim (or a helpline), a case number and a PIN.

- The case number is 100 random bits from :mod:`secrets` (20 Crockford base-32 characters,
  shown in groups of four). Only its SHA-256 is stored, like an API key: it cannot be recovered,
  and a copy of the database does not reveal it.
- The PIN is chosen by the person and stored as an Argon2id hash (slow KDF); it cannot be
  recovered either. Wrong PINs count against the case: after ``victim_pin_attempts`` the case is
  locked for a minute, and the lock doubles with every further wrong PIN (up to a day). Each
  attempt is counted atomically *before* its PIN is checked, so concurrent requests cannot check
  more PINs than that. Unknown case numbers, wrong PINs and locked cases get the same answer
  after the same slow work.
- Every hash becomes an entry of the hub bank (``Settings.victim_hub_bank``, kind ``ncii``,
  published to partners) with provenance source ``victim-hub`` and an opaque random external id
  per hash: partners never learn case numbers.
- Withdrawing a case withdraws its entries through :class:`BankService`, so the change log carries
  the withdrawal to every worker and every partner (who must delete the hash).
- No IP address, file name or image is ever stored here.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Sequence

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import func, or_, select, update

from consentry.banks.formats.records import HashRecord
from consentry.banks.service import BankService, NotFound
from consentry.config import Settings
from consentry.db.models import Bank, Entry, utcnow
from consentry.db.models_victims import FEEDBACK_STATUSES, PartnerFeedback, VictimCase, VictimHash
from consentry.errors import ConsentryError, SignalValueError
from consentry.signals import PDQ_MIN_QUALITY, get_signal_type

#: Crockford base 32 (no I, L, O, U): easy to read out over the phone.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CASE_CHARS = 20  # 20 x 5 = 100 bits
PIN_MIN, PIN_MAX = 6, 64
SOURCE = "victim-hub"
MAX_LOCK = timedelta(days=1)
_hasher = PasswordHasher()  # Argon2id, argon2-cffi's RFC 9106 low-memory defaults


class VictimError(ConsentryError):
    code = "victim_error"


class BadSubmission(VictimError):
    code = "bad_submission"


class MinorRefused(VictimError):
    """The person depicted was under 18: adult NCII banks are the wrong place."""

    code = "under_18"


class WrongCredentials(VictimError):
    """Unknown case number or wrong PIN (deliberately the same error)."""

    code = "wrong_case_or_pin"


#: The one answer to an unknown case number, a wrong PIN and a locked case alike.
WRONG = ("the case number or the PIN is wrong; after several wrong PINs a case is also paused "
         "for a while, so if both are right, please try again later")


class CaseLocked(VictimError):
    """Kept for compatibility: a locked case now raises :class:`WrongCredentials` (see ``_open``)."""

    code = "case_locked"

    def __init__(self, retry_after: float):
        super().__init__("too many wrong PINs for this case; try again later")
        self.retry_after = retry_after


# ------------------------------------------------------------------ case numbers
def new_case_number() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(CASE_CHARS))
    return "-".join(raw[i : i + 4] for i in range(0, CASE_CHARS, 4))


def normalize_case_number(text: str) -> str | None:
    """Canonical form (groups of four) of what a person typed, or None if it cannot be one."""
    if not isinstance(text, str) or len(text) > 64:
        return None
    s = text.strip().upper().translate(str.maketrans({"O": "0", "I": "1", "L": "1", "-": None, " ": None}))
    if len(s) != CASE_CHARS or any(c not in ALPHABET for c in s):
        return None
    return "-".join(s[i : i + 4] for i in range(0, CASE_CHARS, 4))


def _number_hash(number: str) -> str:
    return hashlib.sha256(("consentry-case:" + number).encode()).hexdigest()


_DUMMY_HASH: list[str] = []


def _verify_pin(pin_hash: str, pin: str) -> bool:
    """The one place a case's PIN is checked (Argon2id)."""
    try:
        return _hasher.verify(pin_hash, pin)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _equalise(pin: Any) -> None:
    """The same slow work as :func:`_verify_pin` (an Argon2 verify), for answers that check no PIN."""
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(_hasher.hash(secrets.token_hex(16)))
    try:
        _hasher.verify(_DUMMY_HASH[0], pin if isinstance(pin, str) else "")
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        pass


def case_key(text: str) -> str:
    """What per-case rate limits are keyed on: the SHA-256 of the normalised case number, so
    ``abcd efgh…``, ``ABCD-EFGH-…`` and O/I/L typos share one limit (raw text if it cannot be one)."""
    canonical = normalize_case_number(text) if isinstance(text, str) else None
    return _number_hash(canonical) if canonical else hashlib.sha256(str(text).encode()).hexdigest()


def check_pin(pin: Any) -> str:
    if not isinstance(pin, str) or not (PIN_MIN <= len(pin) <= PIN_MAX):
        raise BadSubmission(f"the PIN must be {PIN_MIN} to {PIN_MAX} characters")
    return pin


# ------------------------------------------------------------------ submissions
#: At most this many canonical PDQ variants per picture (the page sends one per kind).
MAX_VARIANTS = 32
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


@functools.lru_cache(maxsize=1)
def variant_kinds() -> tuple[str, ...]:
    """The kinds of canonical variants a picture may come with (issue 21): those the server itself
    stores for a bank photo (:func:`consentry.signals.canonical.stored_extra_hashes` with its
    defaults): ``trimmed``, the centre and corner windows (``crop90@0.5,0.5`` ...) and the turns
    (``rot-6`` ... ``rot+6``)."""
    from consentry.signals.canonical import STORED_ROTATIONS, subcrop_boxes

    return ("trimmed", *subcrop_boxes(100, 100), *(f"rot{d:+g}" for d in STORED_ROTATIONS))


def _kinds_text() -> str:
    kinds = variant_kinds()
    crops = list(dict.fromkeys(k.split("@")[0] + "@x,y" for k in kinds if k.startswith("crop")))
    anchors = sorted({a for k in kinds if k.startswith("crop") for a in k.split("@")[1].split(",")}, key=float)
    rots = [k for k in kinds if k.startswith("rot")]

    def alternatives(words: list[str]) -> str:
        return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"

    return (f"trimmed; {alternatives(crops)} with x and y each {alternatives(anchors)}; "
            f"{alternatives(rots)}")


@dataclass(frozen=True)
class SubmittedVariant:
    """One canonical PDQ variant of a submitted picture (what ``BankService.set_variants`` takes)."""

    kind: str
    value: str
    quality: int


@dataclass
class SubmittedMedia:
    """What the victim page (or ``consentry victim hash``) sends for one image or video.

    ``pdq_variants``: optional ``[{"kind", "pdq", "quality"}, ...]``, the PDQ of the picture's
    canonical variants computed on the device (``web/static/victim/canonical.js``), stored with
    the picture's PDQ entry so crops, borders and small turns of it are found too.
    """

    md5: str | None = None
    pdq: str | None = None
    pdq_quality: int | None = None
    vpdq: list[str] | None = None
    pdq_variants: list[Any] | None = None

    def variants(self) -> list[SubmittedVariant]:
        """Validated canonical variants (empty when none were sent); raises :class:`BadSubmission`."""
        raw = self.pdq_variants
        if raw is None:
            return []
        if not isinstance(raw, list) or len(raw) > MAX_VARIANTS:
            raise BadSubmission(f"pdq_variants must be a list of at most {MAX_VARIANTS} variants")
        if raw and self.pdq is None:
            raise BadSubmission("pdq_variants need the picture's own pdq")
        out: list[SubmittedVariant] = []
        seen: set[str] = set()
        for n, v in enumerate(raw, 1):
            if not isinstance(v, dict) or set(v) != {"kind", "pdq", "quality"}:
                raise BadSubmission(f"pdq_variants[{n}] must be an object with kind, pdq and quality")
            kind, value, quality = v["kind"], v["pdq"], v["quality"]
            if not isinstance(kind, str) or kind not in variant_kinds():
                raise BadSubmission(f"pdq_variants[{n}]: unknown kind {repr(kind)[:40]} (the kinds are "
                                    f"{_kinds_text()})")
            if kind in seen:
                raise BadSubmission(f"pdq_variants[{n}]: kind {kind} is given twice")
            seen.add(kind)
            if not isinstance(value, str) or not _HEX64.fullmatch(value):
                raise BadSubmission(f"pdq_variants[{n}] ({kind}): pdq must be 64 hex characters")
            if isinstance(quality, bool) or not isinstance(quality, int) or not 0 <= quality <= 100:
                raise BadSubmission(f"pdq_variants[{n}] ({kind}): quality must be an integer from 0 to 100")
            out.append(SubmittedVariant(kind, value.lower(), quality))
        return out

    def signals(self) -> list[tuple[str, str, int | None]]:
        """Validated ``(signal_type, canonical value, quality)``; raises :class:`BadSubmission`."""
        out: list[tuple[str, str, int | None]] = []
        try:
            if self.md5 is not None:
                out.append(("md5", get_signal_type("md5").parse(self.md5), None))
            if self.pdq is not None:
                q = self.pdq_quality
                if q is not None and (not isinstance(q, int) or not 0 <= q <= 100):
                    raise BadSubmission("pdq_quality must be an integer from 0 to 100")
                out.append(("pdq", get_signal_type("pdq").parse(self.pdq), q))
            if self.vpdq:
                import json

                out.append(("vpdq", get_signal_type("vpdq").parse(json.dumps(list(self.vpdq))), None))
        except SignalValueError as exc:
            raise BadSubmission(str(exc)) from None
        if not out:
            raise BadSubmission("each item needs at least one of md5, pdq, vpdq")
        return out


@dataclass
class CaseStatus:
    status: str  # active | withdrawn
    received: int  # hashes received with the case
    active: int  # of those, how many partners are currently asked to match
    matched: int  # hashes at least one partner reported having found
    feedback: dict[str, int] = field(default_factory=dict)  # partner reports by status (counts only)
    created_at: datetime | None = None
    photos: int = 0  # distinct pictures (a picture gives an MD5 and a PDQ: count pictures, not hashes)
    videos: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "received": self.received, "active": self.active,
                "matched": self.matched, "feedback": self.feedback, "photos": self.photos, "videos": self.videos,
                "created_on": self.created_at.date().isoformat() if self.created_at else None}


@dataclass
class SubmitResult:
    case_number: str  # shown once; only its hash is stored
    received: int  # hashes (an image gives an MD5 and a PDQ)

    def to_dict(self) -> dict[str, Any]:
        return {"case_number": self.case_number, "received": self.received, "status": "active"}


def _aware(dt: datetime | None) -> datetime | None:
    if dt is not None and dt.tzinfo is None:  # SQLite hands back naive UTC
        return dt.replace(tzinfo=timezone.utc)
    return dt


class VictimCases:
    def __init__(self, banks: BankService, settings: Settings):
        self.banks, self.db, self.settings = banks, banks.db, settings

    # -------------------------------------------------------------- hub bank
    def hub_bank(self) -> str:
        """The hub bank's name, created (kind ncii, published) on first use."""
        name = self.settings.victim_hub_bank
        if not name:
            raise VictimError("this instance does not accept victim submissions")
        try:
            self.banks.get_bank(name)
        except NotFound:
            from consentry.banks.service import Conflict

            try:
                self.banks.create_bank(name, "ncii", "Hashes submitted by victims through the victim page "
                                       "or a helpline (published to partners).", source=SOURCE, shared=True)
            except Conflict:  # created by another worker meanwhile
                pass
        return name

    # -------------------------------------------------------------- submit
    def submit(self, items: Sequence[SubmittedMedia], pin: str, *, depicted_adult: bool | None) -> SubmitResult:
        if depicted_adult is not True:
            raise MinorRefused("the hub only takes images of adults; see where to go instead")
        check_pin(pin)
        if not items:
            raise BadSubmission("no hashes were sent")
        if len(items) > self.settings.victim_max_hashes:
            raise BadSubmission(f"at most {self.settings.victim_max_hashes} images or videos per case")
        signals: dict[tuple[str, str], int | None] = {}
        variants: dict[str, list[SubmittedVariant]] = {}  # picture PDQ -> its canonical variants
        for n, item in enumerate(items, 1):
            for st, value, quality in item.signals():
                signals[(st, value)] = quality
            try:
                found = item.variants()
            except BadSubmission as exc:
                raise BadSubmission(f"item {n}: {exc}") from None
            # as for a bank photo's own file: only a usable PDQ gets variants (hashing.stored_variants)
            if found and (item.pdq_quality or 0) >= PDQ_MIN_QUALITY:
                variants[get_signal_type("pdq").parse(item.pdq)] = found
        bank = self.hub_bank()
        number = new_case_number()
        pin_hash = _hasher.hash(pin)
        opaque = {key: secrets.token_hex(16) for key in signals}
        records = [
            HashRecord(st, value, "add", [opaque[(st, value)]], [SOURCE], "ncii", SOURCE,
                       {"quality": q} if q is not None else {})
            for (st, value), q in signals.items()
        ]
        with self.db.session() as s:
            bank_id = s.scalar(select(Bank.id).where(Bank.name == bank))
            case = VictimCase(number_hash=_number_hash(number), pin_hash=pin_hash, status="active",
                              bank_id=bank_id, failed_pins=0)
            s.add(case)
            s.flush()
            case_id = case.id
        report = self.banks.add_records(bank, records, added_by=SOURCE)
        if report.errors:  # validated above, so this is a bug, not bad input
            raise VictimError(report.errors[0].message)
        for pdq, found in variants.items():  # logged as a change, so every matcher indexes them
            self.banks.set_variants(bank, pdq, found)
        with self.db.session() as s:
            for st, value in signals:
                entry = self.banks.find_entry(bank, st, value)
                s.add(VictimHash(case_id=case_id, signal_type=st, entry_id=entry.id if entry else None,
                                 opaque_id=opaque[(st, value)]))
        return SubmitResult(number, len(signals))

    # -------------------------------------------------------------- access
    def _reserve(self, case_id: int) -> tuple[int, str] | None:
        """Count one PIN attempt *before* checking it; None while the case is locked.

        A compare-and-swap on ``failed_pins`` (re-read and retried when another attempt got there
        first) that also refuses while ``locked_until`` is in the future. The attempt that reaches
        ``victim_pin_attempts`` sets the lock in the same UPDATE, so however many requests arrive
        at once, at most that many PINs are ever checked before the lock, and then one per expired
        lock (each relocks for twice as long). Returns the count this attempt reserved and the
        PIN hash to check.
        """
        limit = max(1, int(self.settings.victim_pin_attempts))
        for _ in range(1000):
            now = utcnow()
            with self.db.session() as s:
                row = s.execute(select(VictimCase.failed_pins, VictimCase.locked_until, VictimCase.pin_hash)
                                .where(VictimCase.id == case_id)).one_or_none()
            if row is None:
                return None
            failed, locked, pin_hash = int(row[0] or 0), _aware(row[1]), row[2]
            if locked is not None and locked > now:
                return None
            mine = failed + 1
            over = mine - limit
            lock = now + min(MAX_LOCK, timedelta(minutes=1) * (2 ** min(over, 20))) if over >= 0 else None
            with self.db.session() as s:
                res = s.execute(
                    update(VictimCase)
                    .where(VictimCase.id == case_id, VictimCase.failed_pins == failed,
                           or_(VictimCase.locked_until.is_(None), VictimCase.locked_until <= now))
                    .values(failed_pins=mine, locked_until=lock)
                    .execution_options(synchronize_session=False))
                if res.rowcount == 1:
                    return mine, pin_hash or ""
        return None  # pragma: no cover - a thousand lost races in a row: treat as locked

    def _open(self, number: str, pin: str) -> int:
        """The id of the case ``number`` if ``pin`` is right.

        An unknown case number, a wrong PIN and a locked case raise the same
        :class:`WrongCredentials` after the same slow Argon2 work, so none can be told apart.
        """
        canonical = normalize_case_number(number)
        if canonical is None or not isinstance(pin, str) or len(pin) > PIN_MAX:
            _equalise(pin)
            raise WrongCredentials(WRONG)
        with self.db.session() as s:
            case_id = s.scalar(select(VictimCase.id).where(VictimCase.number_hash == _number_hash(canonical)))
        reserved = self._reserve(case_id) if case_id is not None else None
        if reserved is None:  # unknown or locked: the same slow work as a real check, nothing checked
            _equalise(pin)
            raise WrongCredentials(WRONG)
        mine, pin_hash = reserved
        if not _verify_pin(pin_hash, pin):
            raise WrongCredentials(WRONG)  # already counted by _reserve
        with self.db.session() as s:
            # a right PIN clears the count and the lock it may have set itself; if other attempts
            # were counted since (a lock they set included), it only gives back its own attempt
            res = s.execute(update(VictimCase).where(VictimCase.id == case_id, VictimCase.failed_pins == mine)
                            .values(failed_pins=0, locked_until=None)
                            .execution_options(synchronize_session=False))
            if res.rowcount != 1:
                s.execute(update(VictimCase).where(VictimCase.id == case_id, VictimCase.failed_pins > 0)
                          .values(failed_pins=VictimCase.failed_pins - 1)
                          .execution_options(synchronize_session=False))
        return case_id

    def status(self, number: str, pin: str) -> CaseStatus:
        case_id = self._open(number, pin)
        with self.db.session() as s:
            return self._status(s, s.get(VictimCase, case_id))

    def withdraw(self, number: str, pin: str) -> CaseStatus:
        case_id = self._open(number, pin)
        with self.db.session() as s:
            case = s.get(VictimCase, case_id)
            entry_ids = [e for e in s.scalars(select(VictimHash.entry_id).where(VictimHash.case_id == case_id)) if e]
            if case.status != "withdrawn":
                case.status, case.withdrawn_at = "withdrawn", utcnow()
            # entries another active case still needs stay active
            shared = set(s.scalars(
                select(VictimHash.entry_id).join(VictimCase, VictimCase.id == VictimHash.case_id)
                .where(VictimHash.entry_id.in_(entry_ids or [-1]), VictimCase.status == "active",
                       VictimCase.id != case_id)))
            rows = s.execute(select(Entry.id, Bank.name, Entry.status).join(Bank, Bank.id == Entry.bank_id)
                             .where(Entry.id.in_(entry_ids or [-1]))).all()
        for entry_id, bank, entry_status in rows:
            if entry_id not in shared and entry_status != "withdrawn":
                self.banks.set_status(bank, "withdrawn", entry_id=entry_id)
        with self.db.session() as s:
            return self._status(s, s.get(VictimCase, case_id))

    def _status(self, s, case: VictimCase) -> CaseStatus:
        entry_ids = [e for e in s.scalars(select(VictimHash.entry_id).where(VictimHash.case_id == case.id)) if e]
        by_type = dict(s.execute(select(VictimHash.signal_type, func.count()).where(VictimHash.case_id == case.id)
                                 .group_by(VictimHash.signal_type)).all())
        received = int(sum(by_type.values()))
        videos = int(by_type.get("vpdq", 0))
        # each item sends an MD5 and a PDQ (picture) or vPDQ (video), either alone from the CLI
        photos = max(int(by_type.get("pdq", 0)), int(by_type.get("md5", 0)) - videos, 0)
        active = int(s.scalar(select(func.count()).select_from(Entry)
                              .where(Entry.id.in_(entry_ids or [-1]), Entry.status == "active")) or 0)
        feedback = {k: 0 for k in FEEDBACK_STATUSES}
        matched: set[int] = set()
        for entry_id, st in s.execute(select(PartnerFeedback.entry_id, PartnerFeedback.status)
                                      .where(PartnerFeedback.entry_id.in_(entry_ids or [-1]))):
            feedback[st] = feedback.get(st, 0) + 1
            matched.add(entry_id)
        return CaseStatus(case.status, received, active, len(matched), feedback, _aware(case.created_at),
                          photos, videos)


def media_from_json(items: Iterable[Any]) -> list[SubmittedMedia]:
    """Parse the ``items`` of a hashes document (what the page and ``victim hash`` produce)."""
    out = []
    for i, raw in enumerate(items):
        if not isinstance(raw, dict):
            raise BadSubmission(f"item {i + 1} is not an object")
        unknown = set(raw) - {"md5", "pdq", "pdq_quality", "vpdq", "kind", "pdq_variants"}
        if unknown:
            raise BadSubmission(f"item {i + 1} has unknown fields: {', '.join(sorted(unknown))}")
        vpdq = raw.get("vpdq")
        if vpdq is not None and (not isinstance(vpdq, list) or len(vpdq) > 20_000):
            raise BadSubmission(f"item {i + 1}: vpdq must be a list of at most 20000 frames")
        media = SubmittedMedia(raw.get("md5"), raw.get("pdq"), raw.get("pdq_quality"), vpdq,
                               raw.get("pdq_variants"))
        try:
            media.variants()
        except BadSubmission as exc:
            raise BadSubmission(f"item {i + 1}: {exc}") from None
        out.append(media)
    return out
