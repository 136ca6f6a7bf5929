"""A stand-in for NCMEC's CyberTipline reporting API (``ispws``) on loopback, for the client tests.

It follows the published flow: ``/submit`` (a ``<report>``) -> report id, ``/upload`` (multipart
``id`` + ``file``) -> file id and MD5, ``/fileinfo`` (``<fileDetails>``), ``/finish``, ``/retract``,
``/status``. Every XML body is validated against the schema kept in the package (a 4100 answer
when it does not validate), Basic auth is checked, and every call is recorded. ``faults`` makes
a step fail once, for the retry tests: ``"http503"`` answers 503 without doing anything,
``"lost"`` does the work and then answers 502 (the answer is lost on the way back).
"""

from __future__ import annotations

import base64
import hashlib
import itertools
from email.parser import BytesParser
from email.policy import HTTP

from consentry.cybertip.builder import schema_errors
from exchange_standin import Seen, StandIn


def _answer(root: str, code: int, description: str = "", **fields) -> tuple[int, str, dict]:
    inner = "".join(f"<{k}>{v}</{k}>" for k, v in fields.items() if v is not None and k != "files")
    if "files" in fields:
        inner += "<files>" + "".join(f"<fileId>{f}</fileId>" for f in fields["files"]) + "</files>"
    desc = f"<responseDescription>{description}</responseDescription>" if description and root == "reportResponse" else ""
    body = f'<?xml version="1.0" encoding="UTF-8"?><{root}><responseCode>{code}</responseCode>{desc}{inner}</{root}>'
    return 200, body, {"Content-Type": "text/xml"}


class CybertipStandIn:
    def __init__(self, username: str = "esp-user", password: str = "esp-pass"):
        self.auth = "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
        self.ids = itertools.count(1001)
        self.file_ids = itertools.count(1)
        self.reports: dict[str, dict] = {}  # report id -> {"xml", "files": {fid: {...}}, "finished", "retracted"}
        self.calls: list[str] = []  # "submit", "upload", ... in order
        self.invalid: list[list[str]] = []  # schema errors of refused documents
        self.faults: dict[str, str] = {}
        self.server = StandIn(self._route)

    def __enter__(self):
        self.server.__enter__()
        self.url = self.server.url + "/ispws"
        return self

    def __exit__(self, *exc):
        self.server.__exit__(*exc)

    @property
    def seen(self) -> list[Seen]:
        return self.server.seen

    def finished(self) -> list[str]:
        return [rid for rid, r in self.reports.items() if r["finished"]]

    def _form(self, req: Seen) -> dict:
        ctype = req.headers.get("content-type", "")
        if ctype.startswith("application/x-www-form-urlencoded"):
            from urllib.parse import parse_qs

            return {k: v[0] for k, v in parse_qs(req.body.decode()).items()}
        msg = BytesParser(policy=HTTP).parsebytes(b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + req.body)
        out = {}
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            out[name] = (part.get_filename(), part.get_payload(decode=True), part.get_content_type()) \
                if part.get_filename() else part.get_payload(decode=True).decode()
        return out

    def _route(self, req: Seen):
        step = req.path.rsplit("/", 1)[-1]
        self.calls.append(step)
        if req.headers.get("authorization") != self.auth:
            return 401, "", {"WWW-Authenticate": 'Basic realm="ispws"'}
        fault = self.faults.pop(step, None)
        if fault == "http503":
            return 503, "busy"
        out = self._handle(step, req)
        if fault == "lost":
            return 502, "bad gateway"
        return out

    def _handle(self, step: str, req: Seen):
        if step == "status":
            return _answer("reportResponse", 0)
        if step in ("submit", "fileinfo"):
            errors = schema_errors(req.body)
            if errors:
                self.invalid.append(errors)
                return _answer("reportResponse", 4100, "Validation failed")
        if step == "submit":
            rid = str(next(self.ids))
            self.reports[rid] = {"xml": req.body.decode(), "files": {}, "finished": False, "retracted": False}
            return _answer("reportResponse", 0, "Success", reportId=rid)
        if step == "upload":
            form = self._form(req)
            r = self.reports.get(form.get("id"))
            if r is None or r["retracted"]:
                return _answer("reportResponse", 5001, "Report does not exist")
            if r["finished"]:
                return _answer("reportResponse", 5102, "Report already finished")
            name, data, ctype = form["file"]
            fid = f"f{next(self.file_ids)}"
            r["files"][fid] = {"name": name, "data": data, "type": ctype, "details": None}
            return _answer("reportResponse", 0, "Success", reportId=form["id"], fileId=fid,
                           hash=hashlib.md5(data).hexdigest())
        if step == "fileinfo":
            import defusedxml.ElementTree as DET

            root = DET.fromstring(req.body)
            r = self.reports.get(root.findtext("reportId"))
            if r is None or r["retracted"]:
                return _answer("reportResponse", 5001, "Report does not exist")
            f = r["files"].get(root.findtext("fileId"))
            if f is None:
                return _answer("reportResponse", 4100, "Validation failed: unknown file id")
            f["details"] = req.body.decode()
            return _answer("reportResponse", 0, "Success", reportId=root.findtext("reportId"))
        if step in ("finish", "retract"):
            rid = self._form(req).get("id")
            r = self.reports.get(rid)
            if r is None or r["retracted"]:
                return _answer("reportResponse", 5001, "Report does not exist")
            if r["finished"]:
                return _answer("reportResponse", 5102, "Report already finished")
            if step == "retract":
                r["retracted"] = True
                return _answer("reportResponse", 0, "Success", reportId=rid)
            r["finished"] = True
            return _answer("reportDoneResponse", 0, reportId=rid, files=list(r["files"]))
        return 404, "not found"
