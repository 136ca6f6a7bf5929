"""Build a CyberTipline report from a confirmed CSAM case, and validate it before anything is sent.

The report carries only what the schema asks for and what this instance or the platform knows:

- ``reporter``: the filing organisation's reporting person (name, e-mail, phone) and optional
  contact person, company template, terms of service and legal URL (``report cybertip configure``).
- ``incidentSummary``: the incident type (default "Child Pornography (possession, manufacture,
  and distribution)", which covers AI-generated material) and time (the platform's, else the
  earliest time a file of the case reached review, and the summary says which).
- ``personOrUserReported``: the uploader id of the case (``espIdentifier``) and what the platform
  supplied in the filing request: screen name, display name, profile URL, e-mail addresses, IP
  addresses with event and time. Nothing is looked up or inferred.
- one ``fileDetails`` per case item whose media are in the vault: original file name and location
  (platform-supplied), MD5 and SHA-256 of the bytes received (``originalFileHash``), PDQ
  (``details type="HASH"``), whether a reviewer of this instance viewed it (a logged reveal, or
  the platform says so), and the AI-generation evidence the assessment found
  (``fileAnnotations/generativeAi`` plus one ``details`` pair per finding). Items without media
  are listed in the report's ``additionalInfo`` by their hashes (nothing to upload).
"""

from __future__ import annotations

import ipaddress
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from consentry.errors import ConsentryError

XSD_PATH = Path(__file__).with_name("ispws.xsd")
DEFAULT_INCIDENT_TYPE = "Child Pornography (possession, manufacture, and distribution)"
IP_EVENTS = ("Login", "Registration", "Purchase", "Upload", "Other", "Unknown")
AI_CLAIMS = ("ai_generated", "ai_edited")
MAX_DETAILS_BYTES = 64 * 1024  # what a platform may attach to one filing request
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s]+$")


class ReportError(ConsentryError):
    code = "cybertip_error"


class MissingDetails(ReportError):
    """Required report fields are missing: nothing is sent. ``missing`` names each one."""

    code = "cybertip_missing"

    def __init__(self, missing: list[str]):
        self.missing = list(missing)
        super().__init__("the CyberTipline report cannot be built; missing: " + "; ".join(self.missing))


class InvalidReport(ReportError):
    """The document does not validate against the schema: nothing is sent."""

    code = "cybertip_invalid"

    def __init__(self, what: str, errors: list[str]):
        self.errors = list(errors)
        super().__init__(f"the {what} does not validate against the CyberTipline schema: " + "; ".join(errors[:5]))


# ------------------------------------------------------------------------------ schema
@lru_cache(maxsize=4)
def _schema(path: str):
    import xmlschema

    text = Path(path).read_text(encoding="utf-8")
    # a local, self-contained schema: no imports fetched, no entities expanded
    return xmlschema.XMLSchema(text, allow="none", defuse="always")


def schema_errors(xml: str | bytes, xsd: str | Path | None = None) -> list[str]:
    """Every way ``xml`` departs from the schema (empty when valid). Parsed with defusedxml."""
    import defusedxml.ElementTree as DET

    try:
        root = DET.fromstring(xml if isinstance(xml, bytes) else xml.encode("utf-8"))
    except Exception as exc:  # noqa: BLE001 - ParseError, DTD/entity refused, ...
        return [f"not well-formed XML: {type(exc).__name__}: {str(exc)[:200]}"]
    schema = _schema(str(xsd or XSD_PATH))
    out = []
    for err in schema.iter_errors(root):
        where = getattr(err, "path", None) or ""
        out.append(f"{where}: {err.reason or err.message}"[:300])
    return out


def validate(xml: str, what: str, xsd: str | Path | None = None) -> None:
    errors = schema_errors(xml, xsd)
    if errors:
        raise InvalidReport(what, errors)


# ------------------------------------------------------------------------------ helpers
def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse_time(value: Any, what: str) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    try:
        dt = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        raise ReportError(f"{what} must be an ISO 8601 time (e.g. 2026-01-31T12:00:00Z), got {str(value)[:40]!r}") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=timezone.utc)


def _sub(parent: ET.Element, tag: str, text: Any = None) -> ET.Element:
    el = ET.SubElement(parent, tag)
    if text is not None:
        el.text = str(text)
    return el


def _text(value: Any, limit: int) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s[:limit] if s else None


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _tostring(root: ET.Element) -> str:
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


# ------------------------------------------------------------------------------ inputs
@dataclass
class IpEvent:
    ip: str
    event: str | None = None
    at: datetime | None = None
    possible_proxy: bool | None = None
    port: int | None = None

    @classmethod
    def parse(cls, raw: Any, what: str) -> "IpEvent":
        if isinstance(raw, str):
            raw = {"ip": raw}
        if not isinstance(raw, dict) or not raw.get("ip"):
            raise ReportError(f"{what}: give an object with at least \"ip\"")
        try:
            ip = str(ipaddress.ip_address(str(raw["ip"]).strip()))
        except ValueError:
            raise ReportError(f"{what}: {str(raw['ip'])[:60]!r} is not an IP address") from None
        event = raw.get("event")
        if event is not None:
            event = str(event).strip().capitalize()
            if event not in IP_EVENTS:
                raise ReportError(f"{what}: event must be one of {', '.join(IP_EVENTS)}")
        at = parse_time(raw["at"], f"{what} time") if raw.get("at") else None
        port = raw.get("port")
        if port is not None and not (isinstance(port, int) and 0 <= port <= 65535):
            raise ReportError(f"{what}: port must be 0-65535")
        proxy = raw.get("possible_proxy")
        return cls(ip, event, at, None if proxy is None else bool(proxy), port)

    def element(self, parent: ET.Element) -> None:
        ev = _sub(parent, "ipCaptureEvent")
        _sub(ev, "ipAddress", self.ip)
        if self.event:
            _sub(ev, "eventName", self.event)
        if self.at:
            _sub(ev, "dateTime", _iso(self.at))
        if self.possible_proxy is not None:
            _sub(ev, "possibleProxy", _bool(self.possible_proxy))
        if self.port is not None:
            _sub(ev, "port", self.port)

    def to_dict(self) -> dict[str, Any]:
        return {"ip": self.ip, "event": self.event, "at": _iso(self.at) if self.at else None,
                "possible_proxy": self.possible_proxy, "port": self.port}


def _check_details(details: Any) -> dict[str, Any]:
    """The platform's filing details, checked for shape (everything optional)."""
    import json

    if details is None:
        return {}
    if not isinstance(details, dict):
        raise ReportError("the report details must be a JSON object")
    if len(json.dumps(details, default=str)) > MAX_DETAILS_BYTES:
        raise ReportError(f"the report details are over {MAX_DETAILS_BYTES} bytes")
    known = {"incident_type", "incident_time", "reported_user", "files", "additional_info", "urls"}
    unknown = sorted(set(details) - known)
    if unknown:
        raise ReportError(f"unknown report detail {unknown[0]!r}; known: {', '.join(sorted(known))}")
    user = details.get("reported_user") or {}
    if not isinstance(user, dict):
        raise ReportError("reported_user must be an object")
    known_user = {"esp_identifier", "esp_service", "screen_name", "display_name", "profile_url", "emails", "ips"}
    unknown = sorted(set(user) - known_user)
    if unknown:
        raise ReportError(f"unknown reported_user field {unknown[0]!r}; known: {', '.join(sorted(known_user))}")
    for e in user.get("emails") or []:
        if not _EMAIL.match(str(e)):
            raise ReportError(f"reported_user.emails: {str(e)[:80]!r} is not an e-mail address")
    if user.get("profile_url") and not _URL.match(str(user["profile_url"])):
        raise ReportError("reported_user.profile_url must be an http(s) URL")
    files = details.get("files") or {}
    if not isinstance(files, dict):
        raise ReportError("files must be an object keyed by the file's SHA-256")
    for key, f in files.items():
        if not isinstance(f, dict):
            raise ReportError(f"files[{key[:16]}]: must be an object")
        if f.get("location") and not _URL.match(str(f["location"])):
            raise ReportError(f"files[{key[:16]}].location must be an http(s) URL")
    for u in details.get("urls") or []:
        if not _URL.match(str(u)):
            raise ReportError(f"urls: {str(u)[:80]!r} is not an http(s) URL")
    return details


# ------------------------------------------------------------------------------ draft
@dataclass
class FilePlan:
    """One file of the report: what is uploaded and what its ``fileDetails`` will say."""

    item_id: int
    sha256: str | None
    md5: str | None
    pdq: str | None
    uploadable: bool
    original_file_name: str | None = None
    location: str | None = None
    viewed_by_esp: bool = False
    publicly_available: bool | None = None
    ip_event: IpEvent | None = None
    ai_findings: list[str] = field(default_factory=list)

    def file_details_xml(self, report_id: str, file_id: str) -> str:
        root = ET.Element("fileDetails")
        _sub(root, "reportId", report_id)
        _sub(root, "fileId", file_id)
        if self.original_file_name:
            _sub(root, "originalFileName", self.original_file_name)
        if self.location:
            _sub(root, "locationOfFile", self.location)
        _sub(root, "fileViewedByEsp", _bool(self.viewed_by_esp))
        if self.publicly_available is not None:
            _sub(root, "publiclyAvailable", _bool(self.publicly_available))
        _sub(root, "fileRelevance", "Reported")
        if self.ai_findings:
            _sub(_sub(root, "fileAnnotations"), "generativeAi")
        for hash_type, value in (("MD5", self.md5), ("SHA256", self.sha256)):
            if value:
                _sub(root, "originalFileHash", value).set("hashType", hash_type)
        if self.ip_event:
            self.ip_event.element(root)
        if self.pdq:
            hashes = _sub(root, "details")
            hashes.set("type", "HASH")
            pair = _sub(hashes, "nameValuePair")
            _sub(pair, "name", "PDQ")
            _sub(pair, "value", self.pdq)
        if self.ai_findings:
            det = _sub(root, "details")
            for n, finding in enumerate(self.ai_findings, 1):
                pair = _sub(det, "nameValuePair")
                _sub(pair, "name", f"AI-generation evidence {n}")
                _sub(pair, "value", finding)
            _sub(root, "additionalInfo", "AI-generation evidence found by the reporter's assessment: "
                 + " | ".join(self.ai_findings))
        return _tostring(root)

    def to_dict(self) -> dict[str, Any]:
        return {"item_id": self.item_id, "sha256": self.sha256, "md5": self.md5, "pdq": self.pdq,
                "uploadable": self.uploadable, "original_file_name": self.original_file_name,
                "location": self.location, "viewed_by_esp": self.viewed_by_esp,
                "publicly_available": self.publicly_available,
                "ip_event": self.ip_event.to_dict() if self.ip_event else None,
                "ai_findings": self.ai_findings}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FilePlan":
        ip = d.get("ip_event")
        return cls(int(d["item_id"]), d.get("sha256"), d.get("md5"), d.get("pdq"), bool(d.get("uploadable")),
                   d.get("original_file_name"), d.get("location"), bool(d.get("viewed_by_esp")),
                   d.get("publicly_available"), IpEvent.parse(ip, "file ip") if ip else None,
                   list(d.get("ai_findings") or []))


@dataclass
class Draft:
    report_xml: str
    files: list[FilePlan]
    summary: list[str]  # what will be sent, in plain words (console, CLI)

    def to_dict(self) -> dict[str, Any]:
        return {"report_xml": self.report_xml, "files": [f.to_dict() for f in self.files], "summary": self.summary}


def ai_findings(evidence: list[dict[str, Any]]) -> list[str]:
    """The assessment's AI-generation findings of one item, one sentence each."""
    out = []
    for e in evidence or []:
        if not isinstance(e, dict) or e.get("claim") not in AI_CLAIMS:
            continue
        sentence = _text(e.get("sentence"), 400) or ""
        out.append(f"{e.get('source') or 'analyser'}: {e['claim']} ({e.get('strength') or 'unrated'})"
                   + (f" - {sentence}" if sentence else ""))
    return out[:20]


def reporter_missing(reporter: dict[str, Any] | None) -> list[str]:
    r = reporter or {}
    missing = []
    if not _text(r.get("first_name"), 100):
        missing.append("reporter first name (report cybertip configure --reporter-file: first_name)")
    if not _text(r.get("last_name"), 100):
        missing.append("reporter last name (last_name)")
    if not _EMAIL.match(str(r.get("email") or "")):
        missing.append("reporter e-mail address (email)")
    return missing


def build(case: Any, reporter: dict[str, Any] | None, details: dict[str, Any] | None, *,
          viewed_items: set[int] = frozenset(), xsd: str | Path | None = None) -> Draft:
    """The report for ``case`` (a :class:`consentry.review.cases.CaseInfo`). Raises
    :class:`MissingDetails` naming every missing required field, :class:`InvalidReport` when the
    result does not validate; in both cases nothing has been sent."""
    details = _check_details(details)
    reporter = reporter or {}
    missing = reporter_missing(reporter)
    user = dict(details.get("reported_user") or {})
    esp_id = _text(user.get("esp_identifier"), 255) or _text(case.uploader_id, 255)
    if not case.items:
        missing.append("the case has no items to report")
    incident_type = details.get("incident_type") or DEFAULT_INCIDENT_TYPE
    if missing:
        raise MissingDetails(missing)
    summary: list[str] = []
    if details.get("incident_time"):
        incident_at = parse_time(details["incident_time"], "incident_time")
        summary.append(f"Incident time {_iso(incident_at)} (given by the platform).")
    else:
        incident_at = min(i.added_at for i in case.items)
        incident_at = incident_at if incident_at.tzinfo else incident_at.replace(tzinfo=timezone.utc)
        summary.append(f"Incident time {_iso(incident_at)}: when the first file reached review "
                       "(the platform gave no incident_time).")

    root = ET.Element("report")
    inc = _sub(root, "incidentSummary")
    _sub(inc, "incidentType", incident_type)
    _sub(inc, "incidentDateTime", _iso(incident_at))
    summary.insert(0, f"Incident type: {incident_type}.")
    urls = [str(u) for u in details.get("urls") or []][:20]
    if urls:
        web = _sub(_sub(root, "internetDetails"), "webPageIncident")
        for u in urls:
            _sub(web, "url", u)
        summary.append(f"{len(urls)} web page URL(s) given by the platform.")
    rep = _sub(root, "reporter")
    person = _sub(rep, "reportingPerson")
    _sub(person, "firstName", _text(reporter["first_name"], 100))
    _sub(person, "lastName", _text(reporter["last_name"], 100))
    if reporter.get("phone"):
        _sub(person, "phone", _text(reporter["phone"], 50))
    _sub(person, "email", _text(reporter["email"], 255))
    contact = reporter.get("contact") or {}
    if any(contact.get(k) for k in ("first_name", "last_name", "email", "phone")):
        cp = _sub(rep, "contactPerson")
        for key, tag, n in (("first_name", "firstName", 100), ("last_name", "lastName", 100),
                            ("phone", "phone", 50), ("email", "email", 255)):
            if contact.get(key):
                _sub(cp, tag, _text(contact[key], n))
    for key, tag, n in (("company_template", "companyTemplate", 100), ("terms_of_service", "termsOfService", 3000),
                        ("legal_url", "legalURL", 2083)):
        if reporter.get(key):
            _sub(rep, tag, _text(reporter[key], n))
    summary.append(f"Reporter: {reporter['first_name']} {reporter['last_name']} <{reporter['email']}>.")

    ips = [IpEvent.parse(ip, f"reported_user.ips[{n}]") for n, ip in enumerate(user.get("ips") or [])][:50]
    emails = [str(e).strip() for e in user.get("emails") or []][:20]
    fields = {"espIdentifier": esp_id, "espService": _text(user.get("esp_service") or reporter.get("esp_service"), 255),
              "screenName": _text(user.get("screen_name"), 255), "displayName": _text(user.get("display_name"), 255),
              "profileUrl": _text(user.get("profile_url"), 2083)}
    if any(fields.values()) or ips or emails:
        pu = _sub(root, "personOrUserReported")
        if emails:
            p = _sub(pu, "personOrUserReportedPerson")
            for e in emails:
                _sub(p, "email", e)
        for tag, value in fields.items():
            if value:
                _sub(pu, tag, value)
        for ip in ips:
            ip.element(pu)
        told = [k for k, v in (("uploader id", esp_id), ("screen name", fields["screenName"]),
                               ("display name", fields["displayName"]), ("profile URL", fields["profileUrl"])) if v]
        told += [f"{len(emails)} e-mail address(es)"] if emails else []
        told += [f"{len(ips)} IP address(es) with times"] if ips else []
        summary.append("Reported user: " + ", ".join(told) + ".")
    else:
        summary.append("Reported user: none known (the case has no uploader id and the platform gave no details).")

    files_in = details.get("files") or {}
    plans: list[FilePlan] = []
    not_uploadable: list[str] = []
    for it in case.items:
        given = files_in.get(it.sha256 or "") or {}
        ip = IpEvent.parse(given["upload_ip"], f"files[{(it.sha256 or '')[:12]}].upload_ip") if given.get("upload_ip") else None
        plan = FilePlan(it.id, it.sha256, it.md5, it.pdq, it.has_media,
                        _text(given.get("original_file_name"), 2056), _text(given.get("location"), 2083),
                        bool(given["viewed_by_esp"]) if "viewed_by_esp" in given else it.id in viewed_items,
                        None if given.get("publicly_available") is None else bool(given["publicly_available"]),
                        ip, ai_findings(it.evidence))
        plans.append(plan)
        if not plan.uploadable:
            not_uploadable.append(", ".join(f"{k}={v}" for k, v in (("sha256", it.sha256), ("md5", it.md5),
                                                                     ("pdq", it.pdq)) if v))
    info = _text(details.get("additional_info"), 4000) or ""
    if not_uploadable:
        info = (info + "\n" if info else "") + ("Files the reporter did not keep (hashes only): "
                                                + " | ".join(not_uploadable))[:6000]
    if info:
        _sub(root, "additionalInfo", info)
    up = [p for p in plans if p.uploadable]
    summary.append(f"{len(up)} file(s) uploaded, each with MD5/SHA-256" + (", PDQ" if any(p.pdq for p in up) else "")
                   + f"; viewed by a reviewer here: {sum(p.viewed_by_esp for p in up)} of {len(up)}."
                   + (f" {len(not_uploadable)} item(s) without kept media are listed by hash only." if not_uploadable else ""))
    ai = sum(bool(p.ai_findings) for p in plans)
    if ai:
        summary.append(f"{ai} file(s) carry AI-generation evidence (generativeAi annotation and the findings).")
    xml = _tostring(root)
    validate(xml, "report", xsd)
    for p in up:  # each file's details validate too (with placeholder ids) before anything is sent
        validate(p.file_details_xml("1", "placeholder"), f"file details of item {p.item_id}", xsd)
    return Draft(xml, plans, summary)
