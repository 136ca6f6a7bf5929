"""Drafting, approving, filing and retracting CyberTipline reports; the configuration they use.

Configuration (``instance_settings`` row ``cybertip``, changed with ``consentry report cybertip
configure``): the environment (``test`` = exttest.cybertip.org, ``production`` =
report.cybertip.org; ``url`` overrides both, for a local stand-in), the Basic-auth credentials
NCMEC issued (encrypted with the instance secret like exchange credentials, never shown again),
the reporting person, whether four-eyes applies, and optionally NCMEC's own XSD to validate
against.

Who: every filing action needs the ``reporter`` permission (granted by an administrator:
``consentry users grant-reporter``) or the ``admin`` role. With four-eyes on, a draft waits
for a second, different reporter's approval before it can be filed.

Filing never files a case twice:

- one report row per case (``case_id`` unique): a filed case answers with its report id;
- a lease (status ``submitting`` + ``lease_until``) lets one filer at a time work on a case;
- NCMEC's report id and each uploaded file id are saved the moment NCMEC answers, so a retry
  resumes that report (uploading only what is missing) instead of opening a new one;
- only ``/finish`` files a report, and it is only ever called with the saved id; a report NCMEC
  no longer knows (5001, expired unfinished) is started again; "already finished" (5102) on a
  retried ``/finish`` means the earlier call went through.

Filing places a one-year preservation hold (:mod:`consentry.cybertip.holds`), notes the NCMEC
report id on the case, and audits every step (``cybertip.*``).
"""

from __future__ import annotations

import json
import mimetypes
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select, update

from consentry.banks.service import BankService, Conflict, NotFound
from consentry.config import Settings
from consentry.cybertip import builder
from consentry.cybertip.builder import FilePlan, ReportError
from consentry.cybertip.client import ALREADY_FINISHED, ENDPOINTS, NO_SUCH_REPORT, IspwsClient, IspwsError
from consentry.cybertip.holds import HoldService
from consentry.db.models import InstanceSetting, utcnow
from consentry.db.models_cybertip import CybertipReport
from consentry.db.models_review import Case, Decision, Reveal
from consentry.db.session import Database
from consentry.review.audit import AuditLog
from consentry.review.cases import _aware, _iso

SETTING = "cybertip"
LEASE_MINUTES = 15
REPORTER_FIELDS = ("first_name", "last_name", "email", "phone", "company_template", "terms_of_service",
                   "legal_url", "esp_service", "contact")


class ReportForbidden(ReportError):
    code = "forbidden"


class ReportConflict(Conflict):
    code = "conflict"


class ReportNotFound(NotFound):
    code = "not_found"


@dataclass
class ReportInfo:
    id: int
    case_id: int
    status: str
    environment: str
    ncmec_report_id: str | None
    report_xml: str
    files: list[dict[str, Any]]
    details: dict[str, Any]
    drafted_by: str
    approved_by: str | None
    filed_by: str | None
    created_at: datetime
    updated_at: datetime
    submitted_at: datetime | None
    filed_at: datetime | None
    retracted_at: datetime | None
    attempts: int
    last_error: str | None

    def to_dict(self, *, xml: bool = True) -> dict[str, Any]:
        out = {"id": self.id, "case_id": self.case_id, "status": self.status, "environment": self.environment,
               "ncmec_report_id": self.ncmec_report_id, "files": self.files, "drafted_by": self.drafted_by,
               "approved_by": self.approved_by, "filed_by": self.filed_by, "created_at": _iso(self.created_at),
               "updated_at": _iso(self.updated_at), "submitted_at": _iso(self.submitted_at),
               "filed_at": _iso(self.filed_at), "retracted_at": _iso(self.retracted_at),
               "attempts": self.attempts, "last_error": self.last_error,
               "summary": list((self.details or {}).get("_summary", []))}
        if xml:
            out["report_xml"] = self.report_xml
        return out


def _info(r: CybertipReport) -> ReportInfo:
    return ReportInfo(r.id, r.case_id, r.status, r.environment, r.ncmec_report_id, r.report_xml or "",
                      list(r.files or []), dict(r.details or {}), r.drafted_by, r.approved_by, r.filed_by,
                      _aware(r.created_at), _aware(r.updated_at), _aware(r.submitted_at), _aware(r.filed_at),
                      _aware(r.retracted_at), int(r.attempts or 0), r.last_error)


def may_report(role: str, can_report: bool) -> bool:
    """The ``reporter`` permission (or the admin role)."""
    return role == "admin" or bool(can_report)


class CybertipService:
    def __init__(self, db: Database, settings: Settings, *, vault: Any = None, banks: BankService | None = None):
        self.db, self.settings, self.vault = db, settings, vault
        self.banks = banks or BankService(db)
        self.holds = HoldService(db)

    # ------------------------------------------------------------- configuration
    def _config(self) -> dict[str, Any]:
        with self.db.session() as s:
            row = s.get(InstanceSetting, SETTING)
            return dict(row.value) if row is not None and isinstance(row.value, dict) else {}

    def describe(self) -> dict[str, Any]:
        c = self._config()
        env = c.get("environment", "test")
        return {"environment": env, "url": c.get("url") or ENDPOINTS.get(env), "url_overridden": bool(c.get("url")),
                "credentials_set": bool(c.get("credentials")), "reporter": c.get("reporter") or {},
                "reporter_missing": builder.reporter_missing(c.get("reporter")),
                "four_eyes": bool(c.get("four_eyes")), "xsd": c.get("xsd") or str(builder.XSD_PATH),
                "xsd_is_reconstruction": not c.get("xsd")}

    def configure(self, *, environment: str | None = None, url: str | None = None,
                  credentials_text: str | None = None, reporter: dict[str, Any] | None = None,
                  four_eyes: bool | None = None, xsd: str | None = None, actor: str = "cli") -> dict[str, Any]:
        from consentry.exchanges.base import _fernet
        from consentry.exchanges.programs import read_credentials_text

        c = self._config()
        changed = []
        if environment is not None:
            if environment not in ENDPOINTS:
                raise ReportError("environment must be test or production")
            c["environment"] = environment
            changed.append("environment")
        if url is not None:
            if url and not url.startswith(("https://", "http://127.0.0.1", "http://localhost", "http://[::1]")):
                raise ReportError("the URL must be https:// (plain http only for a stand-in on this machine)")
            c["url"] = url.rstrip("/") or None
            changed.append("url")
        if credentials_text is not None:
            creds = read_credentials_text(credentials_text)
            if not isinstance(creds, dict) or not creds.get("username") or not creds.get("password"):
                raise ReportError('the credentials file must be JSON: {"username": "...", "password": "..."}')
            plain = json.dumps({"username": creds["username"], "password": creds["password"]})
            c["credentials"] = _fernet(self.settings).encrypt(plain.encode()).decode()
            changed.append("credentials")
        if reporter is not None:
            if not isinstance(reporter, dict):
                raise ReportError("the reporter file must be a JSON object")
            unknown = sorted(set(reporter) - set(REPORTER_FIELDS))
            if unknown:
                raise ReportError(f"unknown reporter field {unknown[0]!r}; known: {', '.join(REPORTER_FIELDS)}")
            c["reporter"] = reporter
            changed.append("reporter")
        if four_eyes is not None:
            c["four_eyes"] = bool(four_eyes)
            changed.append("four_eyes")
        if xsd is not None:
            if xsd:
                path = Path(xsd).resolve()
                try:
                    builder._schema(str(path))
                except Exception as exc:  # noqa: BLE001 - unreadable or not a schema
                    raise ReportError(f"cannot use {path} as the schema: {str(exc).splitlines()[0][:200]}") from None
                c["xsd"] = str(path)
            else:
                c.pop("xsd", None)
            changed.append("xsd")
        with self.db.session() as s:
            row = s.get(InstanceSetting, SETTING)
            if row is None:
                s.add(InstanceSetting(name=SETTING, value=c, updated_by=actor[:200]))
            else:
                row.value, row.updated_by, row.updated_at = c, actor[:200], utcnow()
            s.flush()
            AuditLog(self.db).record("cybertip.configure", actor, {"changed": changed,
                                     "environment": c.get("environment", "test")}, session=s)
        return self.describe()

    def client(self, **kw: Any) -> IspwsClient:
        from cryptography.fernet import InvalidToken

        from consentry.exchanges.base import _fernet

        c = self._config()
        if not c.get("credentials"):
            raise ReportError("no CyberTipline credentials: consentry report cybertip configure --credentials-file FILE")
        try:
            creds = json.loads(_fernet(self.settings).decrypt(c["credentials"].encode()))
        except (InvalidToken, ValueError):
            raise ReportError("the stored CyberTipline credentials cannot be decrypted (was the instance secret "
                              "changed?); configure them again") from None
        url = c.get("url") or ENDPOINTS[c.get("environment", "test")]
        return IspwsClient(url, creds["username"], creds["password"], **kw)

    # ------------------------------------------------------------- reading
    def get(self, case_id: int) -> ReportInfo | None:
        with self.db.session() as s:
            r = s.scalar(select(CybertipReport).where(CybertipReport.case_id == case_id))
            return _info(r) if r is not None else None

    def list(self, *, status: str | None = None, limit: int = 1000) -> list[ReportInfo]:
        with self.db.session() as s:
            q = select(CybertipReport)
            if status:
                q = q.where(CybertipReport.status == status)
            return [_info(r) for r in s.scalars(q.order_by(CybertipReport.id).limit(max(1, min(limit, 10000))))]

    def eligibility(self, case_id: int) -> str | None:
        """Why case ``case_id`` cannot be reported (None when it can): it must be decided with an
        applied ``confirm`` into a bank of kind ``csam`` (AI-generated CSAM included)."""
        with self.db.session() as s:
            c = s.get(Case, case_id)
            if c is None:
                raise ReportNotFound(f"no case {case_id}")
            if c.status != "decided":
                return f"case {case_id} is {c.status}: only a case confirmed as CSAM can be reported"
            banks = [d.bank for d in s.scalars(select(Decision).where(
                Decision.case_id == case_id, Decision.kind == "confirm", Decision.status == "applied")) if d.bank]
        for name in banks:
            try:
                if self.banks.get_bank(name).kind == "csam":
                    return None
            except NotFound:
                continue
        return (f"case {case_id} was not confirmed into a csam bank: CyberTipline reports are for apparent "
                "child sexual abuse material (confirm the case into a bank of kind csam first)")

    # ------------------------------------------------------------- draft / approve
    def _check(self, permitted: bool) -> None:
        if not permitted:
            raise ReportForbidden("filing CyberTipline reports needs the reporter permission "
                                  "(an administrator grants it: consentry users grant-reporter NAME)")

    def draft(self, case_id: int, details: dict[str, Any] | None, *, actor: str, permitted: bool) -> ReportInfo:
        """Build (or rebuild) the report of a case; validated, nothing sent."""
        from consentry.review.cases import CaseService

        self._check(permitted)
        why = self.eligibility(case_id)
        if why:
            raise ReportConflict(why)
        config = self._config()
        case = CaseService(self.db, self.banks).get(case_id)
        with self.db.session() as s:
            viewed = {i for (i,) in s.execute(select(Reveal.item_id).where(Reveal.case_id == case_id))}
        d = builder.build(case, config.get("reporter"), details, viewed_items=viewed, xsd=config.get("xsd"))
        files = [{**f.to_dict(), "vault_item_id": it.vault_item_id, "media_type": it.media_type,
                  "file_id": None, "fileinfo_sent": False} for f, it in zip(d.files, case.items)]
        status = "pending_approval" if config.get("four_eyes") else "draft"
        now = utcnow()
        stored = {**(details or {}), "_summary": d.summary}
        with self.db.session() as s:
            r = s.scalar(select(CybertipReport).where(CybertipReport.case_id == case_id))
            if r is not None and (r.status in ("submitting", "filed")
                                  or (r.ncmec_report_id and r.status != "retracted")):
                raise ReportConflict(f"case {case_id} already has a report {r.status}"
                                     + (f" (NCMEC id {r.ncmec_report_id})" if r.ncmec_report_id else "")
                                     + ": it cannot be redrafted")
            if r is None:
                r = CybertipReport(case_id=case_id, drafted_by=actor[:200], created_at=now, attempts=0)
                s.add(r)
            r.status, r.environment, r.details, r.report_xml, r.files = (
                status, config.get("environment", "test"), stored, d.report_xml, files)
            r.drafted_by, r.approved_by, r.updated_at, r.last_error, r.retracted_at = actor[:200], None, now, None, None
            r.ncmec_report_id = r.submitted_at = r.filed_by = None  # a retracted report is drafted anew
            s.flush()
            AuditLog(self.db).record("cybertip.drafted", actor, {"case_id": case_id, "report": r.id,
                                     "status": status, "files": len(files)}, session=s)
            return _info(r)

    def approve(self, case_id: int, *, actor: str, permitted: bool) -> ReportInfo:
        """Four-eyes: a second, different reporter approves the draft."""
        self._check(permitted)
        with self.db.session() as s:
            r = self._row(s, case_id)
            if r.status != "pending_approval":
                raise ReportConflict(f"the report of case {case_id} is {r.status}, not waiting for approval")
            if r.drafted_by == actor:
                raise ReportConflict("four-eyes: a different reporter must approve the draft")
            r.status, r.approved_by, r.updated_at = "approved", actor[:200], utcnow()
            s.flush()
            AuditLog(self.db).record("cybertip.approved", actor, {"case_id": case_id, "report": r.id,
                                     "drafted_by": r.drafted_by}, session=s)
            return _info(r)

    def _row(self, s, case_id: int) -> CybertipReport:
        q = select(CybertipReport).where(CybertipReport.case_id == case_id)
        if self.db.dialect == "postgresql":
            q = q.with_for_update()
        r = s.scalar(q)
        if r is None:
            raise ReportNotFound(f"case {case_id} has no CyberTipline report draft "
                                 f"(consentry report cybertip draft {case_id})")
        return r

    # ------------------------------------------------------------- filing
    def _lease(self, case_id: int, actor: str, now: datetime) -> ReportInfo:
        four_eyes = bool(self._config().get("four_eyes"))
        ready = ("approved",) if four_eyes else ("draft", "approved")
        with self.db.session() as s:
            r = self._row(s, case_id)
            info = _info(r)
            if r.status == "filed":
                return info  # idempotent: the case is filed already
            free = r.status in ready or (r.status == "failed" and (r.approved_by or not four_eyes)) or (
                r.status == "submitting" and (r.lease_until is None or _aware(r.lease_until) < now))
            if not free:
                if r.status == "pending_approval":
                    raise ReportConflict(f"the report of case {case_id} waits for a second reporter's approval")
                if r.status == "submitting":
                    raise ReportConflict(f"the report of case {case_id} is being filed by another worker")
                raise ReportConflict(f"the report of case {case_id} is {r.status}: draft it again first")
            got = s.execute(update(CybertipReport).where(CybertipReport.id == r.id, CybertipReport.status == r.status,
                                                         CybertipReport.updated_at == r.updated_at)
                            .values(status="submitting", lease_until=now + timedelta(minutes=LEASE_MINUTES),
                                    attempts=CybertipReport.attempts + 1, updated_at=now, filed_by=actor[:200])
                            .execution_options(synchronize_session=False)).rowcount
            if not got:
                raise ReportConflict(f"the report of case {case_id} is being filed by another worker")
        return self.get(case_id)

    def _save(self, report_id: int, **values: Any) -> None:
        with self.db.session() as s:
            s.execute(update(CybertipReport).where(CybertipReport.id == report_id)
                      .values(updated_at=utcnow(), **values).execution_options(synchronize_session=False))

    def file(self, case_id: int, *, actor: str, permitted: bool, client: IspwsClient | None = None,
             now: datetime | None = None) -> ReportInfo:
        """Submit, upload each file, send its details, finish; hold the case for a year."""
        self._check(permitted)
        now = now or utcnow()
        info = self._lease(case_id, actor, now)
        if info.status == "filed":
            return info
        config = self._config()
        own = client is None
        try:
            builder.validate(info.report_xml, "report", config.get("xsd"))
            plans = [dict(f) for f in info.files]
            if any(f.get("uploadable") for f in plans) and self.vault is None:
                raise ReportError("the evidence vault is off: the files of this report cannot be read")
            client = client or self.client()
            rid = info.ncmec_report_id
            if rid is None:
                rid = client.submit(info.report_xml)
                self._save(info.id, ncmec_report_id=rid, submitted_at=utcnow())
                AuditLog(self.db).record("cybertip.submitted", actor, {"case_id": case_id, "report": info.id,
                                                                       "ncmec_report_id": rid})
            for f in plans:
                if not f.get("uploadable") or f.get("file_id"):
                    continue
                data = self.vault.get(f["vault_item_id"])
                mime = f.get("media_type") or "application/octet-stream"
                name = f.get("original_file_name") or (f"{f.get('sha256') or f['item_id']}"
                                                       + (mimetypes.guess_extension(mime) or ""))
                fid, md5 = client.upload(rid, name, data, mime)
                if md5 and f.get("md5") and md5 != f["md5"]:
                    raise ReportError(f"NCMEC received item {f['item_id']} with MD5 {md5}, not {f['md5']}: "
                                      "the upload was damaged; file again")
                f["file_id"] = fid
                self._save(info.id, files=plans)
            for f in plans:
                if f.get("file_id") and not f.get("fileinfo_sent"):
                    xml = FilePlan.from_dict(f).file_details_xml(rid, f["file_id"])
                    builder.validate(xml, f"file details of item {f['item_id']}", config.get("xsd"))
                    client.fileinfo(xml)
                    f["fileinfo_sent"] = True
                    self._save(info.id, files=plans)
            try:
                client.finish(rid)
            except IspwsError as exc:
                if exc.response_code != ALREADY_FINISHED:  # 5102: an earlier /finish went through
                    raise
            return self._filed(info, rid, plans, actor)
        except IspwsError as exc:
            values: dict[str, Any] = {}
            if exc.response_code == NO_SUCH_REPORT:  # expired unfinished: start a new one next time
                values = {"ncmec_report_id": None, "submitted_at": None,
                          "files": [{**f, "file_id": None, "fileinfo_sent": False} for f in info.files]}
            self._failed(info, actor, exc, **values)
            raise
        except Exception as exc:
            self._failed(info, actor, exc)
            raise
        finally:
            if own and client is not None:
                client.close()

    def _failed(self, info: ReportInfo, actor: str, exc: Exception, **values: Any) -> None:
        from consentry.errors import ConsentryError

        msg = str(exc)[:1000] if isinstance(exc, ConsentryError) else f"unexpected error: {type(exc).__name__}"
        self._save(info.id, status="failed", lease_until=None, last_error=msg, **values)
        AuditLog(self.db).record("cybertip.failed", actor, {"case_id": info.case_id, "report": info.id,
                                                            "error": msg[:300]})

    def _filed(self, info: ReportInfo, rid: str, plans: list[dict[str, Any]], actor: str) -> ReportInfo:
        from consentry.review.cases import _add_note

        now = utcnow()
        with self.db.session() as s:
            r = self._row(s, info.case_id)
            r.status, r.filed_at, r.filed_by, r.lease_until, r.last_error, r.updated_at = (
                "filed", now, actor[:200], None, None, now)
            r.ncmec_report_id, r.files = rid, plans
            c = s.get(Case, info.case_id)
            c.note = _add_note(c.note, f"NCMEC CyberTipline report {rid} filed {now:%Y-%m-%d %H:%M} UTC "
                                       f"({info.environment})")
            c.updated_at = now
            s.flush()
            hold = self.holds.place(s, info.case_id, report_id=r.id, actor=actor, now=now,
                                    reason=f"CyberTipline report {rid} (18 U.S.C. 2258A(h), one year)")
            rec = AuditLog(self.db).record("cybertip.filed", actor, {
                "case_id": info.case_id, "report": r.id, "ncmec_report_id": rid, "environment": info.environment,
                "files": [f.get("file_id") for f in plans if f.get("file_id")], "hold_id": hold.id,
                "hold_until": _iso(hold.expires_at)}, session=s)
            self.holds.cover_through(hold, rec.seq)
            s.flush()
            return _info(r)

    def retract(self, case_id: int, *, actor: str, permitted: bool, client: IspwsClient | None = None) -> ReportInfo:
        """Cancel a report NCMEC has not filed yet (a draft is simply discarded). NCMEC does not
        retract a finished report (5102): contact NCMEC for that."""
        self._check(permitted)
        info = self.get(case_id)
        if info is None:
            raise ReportNotFound(f"case {case_id} has no CyberTipline report")
        if info.status == "retracted":
            return info
        if info.status == "submitting":
            raise ReportConflict(f"the report of case {case_id} is being filed right now; retract it afterwards")
        if info.ncmec_report_id:
            own = client is None
            client = client or self.client()
            try:
                client.retract(info.ncmec_report_id)
            except IspwsError as exc:
                if exc.response_code == ALREADY_FINISHED:
                    raise ReportConflict(f"NCMEC has filed report {info.ncmec_report_id} (finished reports are not "
                                         "retracted over the API): contact NCMEC to correct it") from None
                if exc.response_code != NO_SUCH_REPORT:
                    raise
            finally:
                if own:
                    client.close()
        self._save(info.id, status="retracted", retracted_at=utcnow(), lease_until=None)
        AuditLog(self.db).record("cybertip.retracted", actor, {"case_id": case_id, "report": info.id,
                                                               "ncmec_report_id": info.ncmec_report_id})
        return self.get(case_id)

