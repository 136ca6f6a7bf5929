"""NCMEC hash sharing API v2 client (``--type ncmec``): XML over HTTPS with Basic auth.

Wire format as python-threatexchange describes it (``exchanges/clients/ncmec/hash_api.py``,
``exchanges/impl/ncmec_api.py``; NCMEC's own documentation is
``<environment>/v2/documentation.pdf``):

- Environments (pytx ``NCMECEnvironment``), chosen with ``--option database=`` and
  ``--environment test|production`` (test twins)::

    industry                        report.cybertip.org/hashsharing        exttest.cybertip.org/hashsharing
    industry-exploitative           report.cybertip.org/exploitative-hashsharing   (exttest twin)
    law-enforcement                 lesp.ncmec.org/csam-hashsharing        betalesp.ncmec.org/csam-hashsharing
    ngo                             hashsharing.ncmec.org/npo              hashsharing-test.ncmec.org/npo
    exploitative                    hashsharing.ncmec.org/exploitative     (hashsharing-test twin)
    ngo-generative-ai               hashsharing.ncmec.org/generative-ai-csam          (twin)
    ngo-generative-ai-exploitative  hashsharing.ncmec.org/generative-ai-exploitative  (twin)

- ``GET /v2/status`` -> ``<status><member id="N">name</member></status>`` (who we are; checks
  the credentials before a pull).
- ``GET /v2/entries?from=&to=`` (UTC ``YYYY-MM-DDTHH:MM:SSZ``) -> ``<queryResult>`` with
  ``<images>``/``<videos>`` of ``image``/``video``/``deletedImage``/``deletedVideo`` and
  ``<paging><next>`` — a path under the base URL, followed **verbatim** (never re-built, never to
  another host). Entries are not time-ordered, so the checkpoint (the range's ``to``) is saved
  only once a range is exhausted; a mid-range paging link is kept (for 12 hours, as pytx does) so
  an interrupted pull resumes the same range.
- Feedback: ``PUT /v2/entries/{member id}/{entry id}/{MD5|SHA1|PDQ|PDNA}/feedback`` with
  ``<feedbackSubmission xmlns=...><affirmative/></feedbackSubmission>`` or
  ``<negative><reasonIds><guid>…</guid></reasonIds></negative>``; reasons come from
  ``GET /v2/feedback/{type}/reasons`` (``availableFeedbackReasons/reason[@guid,@name]``).
  NCMEC has no "pending review" status: only reviewers' decisions are sent.

Parsing reuses :mod:`consentry.banks.formats.ncmec` (defused, size-limited, streaming).
"""

from __future__ import annotations

import io
import time
from datetime import datetime, timezone
from typing import Any, Iterator
from urllib.parse import quote, urlsplit
from xml.sax.saxutils import escape

import defusedxml
import defusedxml.ElementTree as DET

from consentry.banks.formats import ncmec as fmt
from consentry.banks.formats.records import HashRecord
from consentry.exchanges._http import Http, HttpStatus
from consentry.exchanges.base import ExchangeError
from consentry.exchanges.programs import Batch

BANK_KIND = "csam"
DATABASES = {
    "industry": ("https://report.cybertip.org/hashsharing", "https://exttest.cybertip.org/hashsharing"),
    "industry-exploitative": ("https://report.cybertip.org/exploitative-hashsharing",
                              "https://exttest.cybertip.org/exploitative-hashsharing"),
    "law-enforcement": ("https://lesp.ncmec.org/csam-hashsharing", "https://betalesp.ncmec.org/csam-hashsharing"),
    "ngo": ("https://hashsharing.ncmec.org/npo", "https://hashsharing-test.ncmec.org/npo"),
    "exploitative": ("https://hashsharing.ncmec.org/exploitative", "https://hashsharing-test.ncmec.org/exploitative"),
    "ngo-generative-ai": ("https://hashsharing.ncmec.org/generative-ai-csam",
                          "https://hashsharing-test.ncmec.org/generative-ai-csam"),
    "ngo-generative-ai-exploitative": ("https://hashsharing.ncmec.org/generative-ai-exploitative",
                                       "https://hashsharing-test.ncmec.org/generative-ai-exploitative"),
}
CHECKPOINT_KEYS = ("cursor", "to", "paging_from", "paging_to", "esp_id")
PAGING_VALID_SECONDS = 12 * 3600
FINGERPRINT_TYPES = {"md5": "MD5", "sha1": "SHA1", "pdq": "PDQ", "photodna": "PDNA"}
NS = fmt.NAMESPACE
_local = fmt._local
MAX_PAGES_PER_RANGE = 100_000


def parse_credentials(raw: Any) -> dict[str, str]:
    """JSON ``{"user", "password"}`` (``username`` accepted) or pytx's ``user:password``."""
    if isinstance(raw, str):
        user, sep, password = raw.partition(":")
        if not sep:
            raise ExchangeError("NCMEC credentials: a JSON object, or 'user:password'")
        raw = {"user": user, "password": password}
    user = str(raw.get("user") or raw.get("username") or "").strip()
    password = str(raw.get("password") or "")
    unknown = sorted(set(raw) - {"user", "username", "password"})
    if unknown:
        raise ExchangeError(f"NCMEC credentials: unknown field(s) {', '.join(unknown)}")
    if not user or not password:
        raise ExchangeError("NCMEC credentials need a user and a password")
    return {"user": user, "password": password}


def check_options(options: dict[str, str], environment: str) -> dict[str, str]:
    known = {"base_url", "database", "bank_kind", "start_timestamp", "window_seconds", "negative_reason"}
    bad = sorted(set(options) - known)
    if bad:
        raise ExchangeError(f"unknown NCMEC option(s): {', '.join(bad)}")
    options.setdefault("database", "industry")
    if options["database"] not in DATABASES:
        raise ExchangeError(f"option database must be one of: {', '.join(DATABASES)}")
    for k in ("start_timestamp", "window_seconds"):
        if k in options and not options[k].isdigit():
            raise ExchangeError(f"option {k} must be a whole number")
    return options


def default_url(environment: str, options: dict[str, str]) -> str:
    prod, test = DATABASES[options.get("database") or "industry"]
    return test if environment == "test" else prod


def ncmec_time(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _small_xml(body: bytes) -> Any:
    try:
        return DET.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except (defusedxml.DefusedXmlException, DET.ParseError):
        raise ExchangeError("NCMEC sent XML that cannot be read safely") from None


class Client:
    def __init__(self, url: str, creds: dict[str, str], *, options: dict[str, Any] | None = None,
                 environment: str = "production", name: str = "ncmec", now=time.time, **http_kw: Any):
        self.url, self.options, self.name, self.now = url.rstrip("/"), dict(options or {}), name, now
        self.http = Http(self.url, "NCMEC", auth=(creds["user"], creds["password"]),
                         headers={"Accept": "application/xml"}, **http_kw)
        self._reasons: dict[str, dict[str, str]] = {}

    def close(self) -> None:
        self.http.close()

    def status(self) -> tuple[int, str]:
        _, body = self.http.request("GET", self.url + "/v2/status")
        root = _small_xml(body)
        for el in root.iter():
            if _local(el.tag) == "member" and (el.get("id") or "").isdigit():
                return int(el.get("id")), (el.text or "").strip()[:200]
        raise ExchangeError("NCMEC's status answer names no member")

    def _next_url(self, next_: str) -> str:
        if not next_.startswith("/") or next_.startswith("//") or "\\" in next_:
            raise ExchangeError("NCMEC sent a paging link that is not a path; refused")
        url = self.url + next_
        self.http.check_origin(url)
        if not urlsplit(url).path.startswith(urlsplit(self.url).path + "/"):
            raise ExchangeError("NCMEC sent a paging link outside the API; refused")
        return url

    def _page(self, url: str, params: dict[str, str] | None) -> tuple[list, str]:
        _, body = self.http.request("GET", url, params=params)
        paging: dict[str, str] = {}
        records = list(fmt.read(io.BytesIO(body), paging=paging))  # one parse: records and the link
        source = f"exchange:{self.name}"
        for r in records:
            if isinstance(r, HashRecord):
                r.source = source
        found = paging.get("next", "")
        if len(found) > 4000:
            raise ExchangeError("NCMEC's paging link is too long")
        return records, found

    def fetch(self, state: dict[str, Any]) -> Iterator[Batch]:
        esp_id, _ = self.status()
        start = int(state.get("to") or self.options.get("start_timestamp") or 0)
        end = int(self.now()) - 5  # entries are not time-ordered: stay clear of "now"
        window = int(self.options.get("window_seconds") or 0) or max(1, end - start)
        paging = state.get("paging_url") or ""
        if paging and (int(self.now()) - int(state.get("paging_at") or 0) > PAGING_VALID_SECONDS
                       or int(state.get("paging_from", -1)) != start):
            paging = ""  # too old to trust: the range is read again from its start
        restarted = False
        while start < end:
            stop = int(state.get("paging_to")) if paging else min(end, start + window)
            url, params = ((self._next_url(paging), None) if paging
                           else (self.url + "/v2/entries", {"from": ncmec_time(start), "to": ncmec_time(stop)}))
            for _ in range(MAX_PAGES_PER_RANGE):
                try:
                    records, next_ = self._page(url, params)
                except HttpStatus as exc:
                    if paging and 400 <= exc.status < 500 and not restarted:  # stale link: read the range again
                        restarted = True
                        paging, url, params = "", self.url + "/v2/entries", {
                            "from": ncmec_time(start), "to": ncmec_time(stop)}
                        continue
                    raise
                batch = Batch(records=records, rows=len(records))
                if next_:  # the range is not exhausted: keep the link (resume), not the checkpoint
                    next_url = self._next_url(next_)  # refused before it is ever saved
                    batch.state = {"to": start, "cursor": start, "esp_id": esp_id, "paging_url": next_,
                                   "paging_from": start, "paging_to": stop, "paging_at": int(self.now())}
                    yield batch
                    url, params, paging = next_url, None, next_
                    continue
                batch.state = {"to": stop, "cursor": stop, "esp_id": esp_id}
                yield batch
                break
            else:
                raise ExchangeError("NCMEC kept paging past the page limit for one range")
            start, paging = stop, ""

    # ------------------------------------------------------------ feedback
    def reasons(self, fp_type: str) -> dict[str, str]:
        if fp_type not in self._reasons:
            _, body = self.http.request("GET", f"{self.url}/v2/feedback/{fp_type}/reasons")
            root = _small_xml(body)
            self._reasons[fp_type] = {el.get("guid"): (el.get("name") or "")[:200] for el in root.iter()
                                      if _local(el.tag) == "reason" and el.get("guid")}
        return self._reasons[fp_type]

    def send(self, items: list[Any]) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for it in items:
            fp = FINGERPRINT_TYPES.get(it.signal_type)
            member, _, entry = (it.external_id or "").partition("/")
            if fp is None or not member.isdigit() or not entry or it.status not in ("blocked", "not_blocked"):
                out[it.id] = "not an NCMEC entry fingerprint this program takes feedback on"
                continue
            if it.status == "blocked":
                vote = "<affirmative/>"
            else:
                guid = self.options.get("negative_reason") or ""
                if not guid:
                    reasons = self.reasons(fp)
                    if len(reasons) != 1:
                        out[it.id] = ("choose a negative feedback reason: --option negative_reason=<guid> "
                                      f"(NCMEC offers {len(reasons)})")
                        continue
                    guid = next(iter(reasons))
                vote = f"<negative><reasonIds><guid>{escape(guid)}</guid></reasonIds></negative>"
            body = f'<feedbackSubmission xmlns="{NS}">{vote}</feedbackSubmission>'.encode()
            path = f"/v2/entries/{member}/{quote(entry, safe='')}/{fp}/feedback"
            try:
                self.http.request("PUT", self.url + path, content=body, retry=False,
                                  headers={"Content-Type": "application/xml; charset=utf-8"})
            except HttpStatus as exc:
                out[it.id] = f"NCMEC answered HTTP {exc.status}"
                continue
            out[it.id] = None
        return out

    @staticmethod
    def feedback_for(status: str, signal_type: str) -> bool:
        return status in ("blocked", "not_blocked") and signal_type in FINGERPRINT_TYPES
