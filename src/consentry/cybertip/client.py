"""The CyberTipline reporting API ("ISP Web Services", ``ispws``) over HTTPS with Basic auth.

Endpoints (NCMEC's public "CyberTipline Reporting API Technical Documentation"):

    production   https://report.cybertip.org/ispws
    test         https://exttest.cybertip.org/ispws

- ``POST /submit`` (``<report>`` XML) -> ``<reportResponse>`` with the new ``reportId``
- ``POST /upload`` (multipart: ``id`` = report id, ``file``) -> ``fileId`` and the MD5 NCMEC computed
- ``POST /fileinfo`` (``<fileDetails>`` XML)
- ``POST /finish`` (form ``id``) -> ``<reportDoneResponse>``: the report is filed
- ``POST /retract`` (form ``id``): cancels a report that is not finished
- ``GET /status``: checks the connection and the credentials

Every answer carries ``responseCode``: 0 success, 1000 server error (retry later), 2000
authentication required, 3000 not authorised, 4100 validation failed, 5001 report does not
exist, 5102 report already finished. A report that is never finished is deleted by NCMEC (24 h
after it was opened, or 1 h after its last change): only ``/finish`` files it.

Answers are read bounded (1 MiB) and parsed with defusedxml; errors name the step and NCMEC's
code, never the credentials or the document sent.
"""

from __future__ import annotations

from typing import Any, Callable

import defusedxml.ElementTree as DET

from consentry.errors import ConsentryError
from consentry.exchanges._http import Http, HttpStatus, RetryLater

PRODUCTION_URL = "https://report.cybertip.org/ispws"
TEST_URL = "https://exttest.cybertip.org/ispws"
ENDPOINTS = {"production": PRODUCTION_URL, "test": TEST_URL}
MAX_ANSWER_BYTES = 1 << 20

OK = 0
SERVER_ERROR = 1000
AUTH_REQUIRED = 2000
NOT_AUTHORISED = 3000
VALIDATION_FAILED = 4100
NO_SUCH_REPORT = 5001
ALREADY_FINISHED = 5102


class IspwsError(ConsentryError):
    """NCMEC answered with a non-zero ``responseCode`` (or an unreadable answer)."""

    code = "cybertip_refused"

    def __init__(self, step: str, response_code: int | None, description: str = ""):
        self.step, self.response_code = step, response_code
        super().__init__(f"NCMEC refused {step}: code {response_code}"
                         + (f" ({description[:200]})" if description else ""))

    @property
    def retryable(self) -> bool:
        return self.response_code == SERVER_ERROR


class IspwsUnavailable(ConsentryError):
    """NCMEC could not be reached or answered 429/5xx: nothing is known to have happened."""

    code = "cybertip_unavailable"


def _parse(step: str, body: bytes) -> Any:
    try:
        root = DET.fromstring(body)
    except Exception:  # noqa: BLE001 - malformed, DTD or entities refused
        raise IspwsError(step, None, "the answer is not the expected XML") from None
    code_el = root.find("responseCode")
    try:
        code = int((code_el.text or "").strip()) if code_el is not None else None
    except ValueError:
        code = None
    if code != OK:
        desc = root.findtext("responseDescription") or ""
        raise IspwsError(step, code, desc)
    return root


class IspwsClient:
    def __init__(self, base_url: str, username: str, password: str, *, timeout: float = 60.0,
                 retries: int = 3, sleep: Callable[[float], None] | None = None, transport: Any = None):
        kw: dict[str, Any] = {"transport": transport}
        if sleep is not None:
            kw["sleep"] = sleep
        self.http = Http(base_url, "NCMEC CyberTipline", auth=(username, password), timeout=timeout,
                         max_bytes=MAX_ANSWER_BYTES, retries=retries, **kw)
        self.base_url = self.http.base_url

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "IspwsClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _post(self, step: str, path: str, *, retry: bool, **kw: Any) -> Any:
        try:
            _status, body = self.http.request("POST", self.base_url + path, retry=retry, **kw)
        except RetryLater as exc:
            raise IspwsUnavailable(f"NCMEC could not take {step} now: {exc}") from None
        except HttpStatus as exc:
            raise IspwsError(step, None, f"HTTP {exc.status}") from None
        return _parse(step, body)

    def _xml(self, step: str, path: str, xml: str, *, retry: bool) -> Any:
        return self._post(step, path, retry=retry, content=xml.encode("utf-8"),
                          headers={"Content-Type": "text/xml; charset=utf-8"})

    def status(self) -> None:
        try:
            _s, body = self.http.request("GET", self.base_url + "/status")
        except RetryLater as exc:
            raise IspwsUnavailable(f"NCMEC cannot be reached: {exc}") from None
        _parse("status", body)

    def submit(self, report_xml: str) -> str:
        """Open a report; its id. Never retried here: a second ``/submit`` opens a second report
        (an unfinished one is harmless: NCMEC deletes it unfiled)."""
        root = self._xml("submit", "/submit", report_xml, retry=False)
        rid = (root.findtext("reportId") or "").strip()
        if not rid.isdigit():
            raise IspwsError("submit", None, "no report id in the answer")
        return rid

    def upload(self, report_id: str, filename: str, data: bytes, media_type: str) -> tuple[str, str | None]:
        """Upload one file to an open report: (file id, the MD5 NCMEC computed)."""
        root = self._post("upload", "/upload", retry=True, data={"id": report_id},
                          files={"file": (filename, data, media_type)})
        fid = (root.findtext("fileId") or "").strip()
        if not fid:
            raise IspwsError("upload", None, "no file id in the answer")
        return fid, (root.findtext("hash") or "").strip().lower() or None

    def fileinfo(self, file_details_xml: str) -> None:
        self._xml("fileinfo", "/fileinfo", file_details_xml, retry=True)

    def finish(self, report_id: str) -> list[str]:
        """File the report; the file ids NCMEC holds for it."""
        root = self._post("finish", "/finish", retry=True, data={"id": report_id})
        return [(f.text or "").strip() for f in root.iter("fileId")]

    def retract(self, report_id: str) -> None:
        self._post("retract", "/retract", retry=True, data={"id": report_id})
