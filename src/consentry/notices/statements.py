"""Statements of reasons (DSA Art. 17) and their export to the DSA Transparency Database.

Every restriction decision (removal, disabling, account suspension or termination) gets one
statement, stored in ``statements_of_reasons``:

- for the uploader (:meth:`StatementService.for_uploader`): the decision, the facts and
  circumstances, the ground (law or terms clause), whether automated means were used, and redress;
- ``body``: the Transparency Database submission (``tdb_statement.schema.json``, kept with its
  source), **without personal data**: no notifier, no uploader, no URL, no content id; free text is
  Consentry's own fixed wording, scrubbed of e-mail addresses, URLs and long numbers in case an
  operator's configured text holds any. The ``puid`` is Consentry's own random id per statement.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Iterator

from sqlalchemy import select

from consentry.db.models import utcnow
from consentry.db.models_notices import StatementOfReasons
from consentry.db.session import Database
from consentry.errors import ConsentryError

SCHEMA_PATH = Path(__file__).resolve().parent / "tdb_statement.schema.json"
RESTRICTIONS = {
    "removal": {"decision_visibility": ["DECISION_VISIBILITY_CONTENT_REMOVED"]},
    "disable": {"decision_visibility": ["DECISION_VISIBILITY_CONTENT_DISABLED"]},
    "account_suspension": {"decision_account": "DECISION_ACCOUNT_SUSPENDED"},
    "account_termination": {"decision_account": "DECISION_ACCOUNT_TERMINATED"},
}
SOURCES = {"notice_dsa": "SOURCE_ARTICLE_16", "notice_other": "SOURCE_TYPE_OTHER_NOTIFICATION",
           "own_initiative": "SOURCE_VOLUNTARY"}
AUTOMATED = {"fully": "AUTOMATED_DECISION_FULLY", "partially": "AUTOMATED_DECISION_PARTIALLY",
             "not_automated": "AUTOMATED_DECISION_NOT_AUTOMATED"}
#: category -> (Transparency Database category, keyword)
CATEGORY = {
    "ncii": ("STATEMENT_CATEGORY_CYBER_VIOLENCE", "KEYWORD_NON_CONSENSUAL_IMAGE_SHARING"),
    "deepfake": ("STATEMENT_CATEGORY_CYBER_VIOLENCE", "KEYWORD_NON_CONSENSUAL_MATERIAL_DEEPFAKE"),
    "csam": ("STATEMENT_CATEGORY_PROTECTION_OF_MINORS", "KEYWORD_CHILD_SEXUAL_ABUSE_MATERIAL"),
    "other": ("STATEMENT_CATEGORY_NOT_SPECIFIED_NOTICE", None),
}
FACTS = {
    "notice": "A notice identified this content as an intimate image shared without consent. A reviewer "
              "checked the notice and the content and decided to restrict it.",
    "sweep": "This content is an identical or near-identical copy of content restricted after a notice; it "
             "was found by comparing perceptual hashes of hosted content.",
    "own_initiative": "The content matched hashes of known non-consensual intimate imagery and a reviewer "
                      "decided to restrict it.",
}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
_NUMBER = re.compile(r"\d{7,}")


class StatementError(ConsentryError):
    code = "statement_error"


def scrub(text: str, limit: int) -> str:
    """Free text for the public database: no e-mail addresses, URLs or long numbers."""
    text = _NUMBER.sub("[number]", _URL.sub("[link]", _EMAIL.sub("[e-mail]", text or "")))
    return " ".join(text.split())[:limit]


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def schema_errors(body: dict[str, Any]) -> list[str]:
    """Where ``body`` breaks the Transparency Database schema (empty when it is valid)."""
    from jsonschema import Draft202012Validator

    v = Draft202012Validator(schema())
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(statement)'}: {e.message}"
            for e in sorted(v.iter_errors(body), key=lambda e: list(map(str, e.absolute_path)))]


@dataclass(frozen=True)
class Ground:
    """``legal`` (illegal content: the law relied on) or ``policy`` (terms of service clause)."""

    kind: str
    reference: str
    explanation: str = ""
    url: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("legal", "policy"):
            raise StatementError("ground must be 'legal' or 'policy'")
        if not (self.reference or "").strip():
            raise StatementError("name the law or the terms clause relied on (reference)")


def build_body(*, puid: str, restriction: str, ground: Ground, category: str, content_type: str | None,
               content_date: date, application_date: date, source: str, automated_detection: bool,
               automated_decision: str, facts: str, illegal_too: bool = True,
               territorial_scope: list[str] | None = None) -> dict[str, Any]:
    """The Transparency Database submission for one restriction (no personal data)."""
    if restriction not in RESTRICTIONS:
        raise StatementError(f"restriction must be one of {', '.join(RESTRICTIONS)}")
    if automated_decision not in AUTOMATED:
        raise StatementError(f"automated_decision must be one of {', '.join(AUTOMATED)}")
    cat, keyword = CATEGORY.get(category, CATEGORY["other"])
    types = ["CONTENT_TYPE_VIDEO" if content_type == "video" else "CONTENT_TYPE_IMAGE"]
    if category == "deepfake":
        types.append("CONTENT_TYPE_SYNTHETIC_MEDIA")
    body: dict[str, Any] = dict(RESTRICTIONS[restriction])
    explanation = scrub(ground.explanation or FACTS.get("notice", ""), 2000)
    if ground.kind == "legal":
        body.update(decision_ground="DECISION_GROUND_ILLEGAL_CONTENT",
                    illegal_content_legal_ground=scrub(ground.reference, 500),
                    illegal_content_explanation=explanation)
    else:
        body.update(decision_ground="DECISION_GROUND_INCOMPATIBLE_CONTENT",
                    incompatible_content_ground=scrub(ground.reference, 500),
                    incompatible_content_explanation=explanation,
                    incompatible_content_illegal="Yes" if illegal_too else "No")
    if ground.url and re.match(r"^https?://", ground.url):
        body["decision_ground_reference_url"] = ground.url[:500]  # the law or the terms, not the content
    body.update(content_type=types, category=cat, content_date=content_date.isoformat(),
                application_date=application_date.isoformat(), decision_facts=scrub(facts, 5000),
                source_type=SOURCES[source], automated_detection="Yes" if automated_detection else "No",
                automated_decision=AUTOMATED[automated_decision], puid=puid)
    if keyword:
        body["category_specification"] = [keyword]
    if territorial_scope:
        body["territorial_scope"] = sorted(set(territorial_scope))
    return body


def new_puid(prefix: str = "sor") -> str:
    return f"{prefix}-{secrets.token_hex(10)}"


@dataclass
class StatementInfo:
    id: int
    puid: str
    notice_id: int | None
    case_id: int | None
    content_id: str | None
    uploader_id: str | None
    restriction: str
    source: str
    automated_detection: bool
    automated_decision: str
    body: dict[str, Any]
    redress: str
    created_at: datetime
    tdb_status: str
    tdb_uuid: str | None
    tdb_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "puid": self.puid, "notice_id": self.notice_id, "case_id": self.case_id,
                "content_id": self.content_id, "restriction": self.restriction, "source": self.source,
                "automated_detection": self.automated_detection, "automated_decision": self.automated_decision,
                "created_at": self.created_at.isoformat() if self.created_at else None,
                "tdb_status": self.tdb_status, "tdb_uuid": self.tdb_uuid, "tdb_error": self.tdb_error,
                "statement": self.body}


def _info(r: StatementOfReasons) -> StatementInfo:
    return StatementInfo(r.id, r.puid, r.notice_id, r.case_id, r.content_id, r.uploader_id, r.restriction, r.source,
                         r.automated_detection, r.automated_decision, dict(r.body or {}), r.redress, r.created_at,
                         r.tdb_status, r.tdb_uuid, r.tdb_error)


class StatementService:
    def __init__(self, db: Database, *, redress: str = ""):
        self.db = db
        self.redress = redress

    def issue(self, session, *, restriction: str, ground: Ground, category: str, content_type: str | None,
              content_date: date | None, source: str, automated_detection: bool, automated_decision: str,
              facts_kind: str, notice_id: int | None = None, case_id: int | None = None,
              content_id: str | None = None, uploader_id: str | None = None, now: datetime | None = None,
              tdb: bool = True) -> StatementOfReasons:
        """Store one statement in ``session`` (the decision's own transaction); checked against the
        schema so an invalid statement is never stored."""
        now = now or utcnow()
        puid = new_puid()
        body = build_body(puid=puid, restriction=restriction, ground=ground, category=category,
                          content_type=content_type, content_date=(content_date or now.date()),
                          application_date=now.date(), source=source, automated_detection=automated_detection,
                          automated_decision=automated_decision, facts=FACTS[facts_kind])
        errors = schema_errors(body)
        if errors:
            raise StatementError("statement does not fit the Transparency Database schema: " + "; ".join(errors[:5]))
        row = StatementOfReasons(puid=puid, notice_id=notice_id, case_id=case_id, content_id=content_id,
                                 uploader_id=uploader_id, restriction=restriction,
                                 source=facts_kind,
                                 automated_detection=automated_detection, automated_decision=automated_decision,
                                 body=body, redress=self.redress, created_at=now,
                                 tdb_status="pending" if tdb else "not_applicable", tdb_attempts=0)
        session.add(row)
        session.flush()
        return row

    def own_initiative(self, *, restriction: str, ground: Ground, category: str = "ncii",
                       content_type: str | None = "photo", content_id: str | None = None,
                       uploader_id: str | None = None, automated_detection: bool = True,
                       automated_decision: str = "not_automated", case_id: int | None = None) -> StatementInfo:
        """A statement for a restriction the platform decided itself (``POST /v1/statements``)."""
        with self.db.session() as s:
            row = self.issue(s, restriction=restriction, ground=ground, category=category, content_type=content_type,
                             content_date=None, source="own_initiative", automated_detection=automated_detection,
                             automated_decision=automated_decision, facts_kind="own_initiative",
                             case_id=case_id, content_id=content_id, uploader_id=uploader_id)
            return _info(row)

    def get(self, puid_or_id: str | int) -> StatementInfo:
        with self.db.session() as s:
            q = select(StatementOfReasons)
            q = q.where(StatementOfReasons.id == int(puid_or_id)) if str(puid_or_id).isdigit() else \
                q.where(StatementOfReasons.puid == str(puid_or_id))
            row = s.scalar(q)
            if row is None:
                from consentry.banks.service import NotFound

                raise NotFound(f"no statement {puid_or_id}")
            return _info(row)

    def list(self, *, notice_id: int | None = None, status: str | None = None, after_id: int = 0,
             limit: int = 100) -> list[StatementInfo]:
        with self.db.session() as s:
            q = select(StatementOfReasons).where(StatementOfReasons.id > after_id)
            if notice_id is not None:
                q = q.where(StatementOfReasons.notice_id == notice_id)
            if status:
                q = q.where(StatementOfReasons.tdb_status == status)
            return [_info(r) for r in s.scalars(q.order_by(StatementOfReasons.id).limit(max(1, min(limit, 10_000))))]

    def export(self, *, status: str | None = None, since: datetime | None = None) -> Iterator[dict[str, Any]]:
        """The submissions (Transparency Database schema, no personal data), oldest first."""
        after = 0
        while True:
            with self.db.session() as s:
                q = select(StatementOfReasons.id, StatementOfReasons.body).where(StatementOfReasons.id > after)
                if status:
                    q = q.where(StatementOfReasons.tdb_status == status)
                if since is not None:
                    q = q.where(StatementOfReasons.created_at >= since)
                rows = s.execute(q.order_by(StatementOfReasons.id).limit(1000)).all()
            if not rows:
                return
            for rid, body in rows:
                yield dict(body)
            after = rows[-1][0]

    def for_uploader(self, puid: str) -> dict[str, Any]:
        """What the uploader is told (Art. 17(3)): decision, facts, ground, automation, redress."""
        st = self.get(puid)
        b = st.body
        legal = b.get("decision_ground") == "DECISION_GROUND_ILLEGAL_CONTENT"
        return {"statement": st.puid, "content_id": st.content_id, "decision": st.restriction,
                "facts": b.get("decision_facts"),
                "ground": {"kind": "legal" if legal else "policy",
                           "reference": b.get("illegal_content_legal_ground") or b.get("incompatible_content_ground"),
                           "explanation": b.get("illegal_content_explanation") or b.get("incompatible_content_explanation")},
                "automated_detection": st.automated_detection, "automated_decision": st.automated_decision,
                "redress": st.redress, "date": b.get("application_date")}

    # ------------------------------------------------------------------ submission
    def submit_pending(self, client: Any, *, batch: int = 100, limit: int = 10_000) -> dict[str, int]:
        """Send pending (and earlier failed) statements with ``client`` (:class:`~consentry.notices.dsa_tdb.TDBClient`)
        in batches of up to 100; each statement is marked ``submitted`` with its uuid or ``failed``
        with the reason. A puid the database already holds counts as submitted (retries are safe)."""
        done = failed = 0
        after = 0
        while done + failed < limit:
            with self.db.session() as s:
                rows = list(s.scalars(select(StatementOfReasons)
                                      .where(StatementOfReasons.id > after,
                                             StatementOfReasons.tdb_status.in_(("pending", "failed")))
                                      .order_by(StatementOfReasons.id).limit(min(batch, 100))))
                pairs = [(r.id, dict(r.body)) for r in rows]
            if not pairs:
                break
            after = pairs[-1][0]
            results = client.submit_many([b for _, b in pairs])
            now = utcnow()
            with self.db.session() as s:
                for (rid, _), res in zip(pairs, results):
                    r = s.get(StatementOfReasons, rid)
                    r.tdb_attempts = (r.tdb_attempts or 0) + 1
                    if res.ok:
                        r.tdb_status, r.tdb_uuid, r.tdb_submitted_at, r.tdb_error = "submitted", res.uuid, now, None
                        done += 1
                    else:
                        r.tdb_status, r.tdb_error = "failed", (res.error or "")[:2000]
                        failed += 1
        return {"submitted": done, "failed": failed}


def write_jsonl(rows: Iterable[dict[str, Any]], out) -> int:
    n = 0
    for r in rows:
        out.write(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n")
        n += 1
    return n
