"""StopNCII.org partner API client (``--type stopncii``).

Wire format as python-threatexchange describes it (``exchanges/clients/stopncii/api.py``,
``exchanges/impl/stop_ncii_api.py``):

- Base URL ``https://api.stopncii.org/v1``; every request carries ``Ocp-Apim-Subscription-Key``
  (the Azure API Management subscription key) and ``x-functions-key`` (a function key *per
  endpoint*: FetchHashes, SubmitFeedback, SubmitHashes).
- ``GET /FetchHashes?startTimestamp=&pageSize=[&nextPageToken=]`` answers ``{count,
  nextPageToken, nextSetTimestamp, hasMoreRecords, hashRecords: [...]}``. Records are full
  snapshots per (signalType, hashValue): a later one replaces an earlier one.
- The checkpoint is the last page's ``nextSetTimestamp``, saved **only once a run completes**
  (``hasMoreRecords`` false): page tokens are not valid for long, and re-reading snapshots is
  harmless. A page token the API no longer accepts (a 4xx on a request carrying one) restarts the
  run once from the saved checkpoint.
- ``POST /SubmitFeedback`` ``{"count": n, "hashFeedbacks": [{"hashValue", "feedbackValue",
  "tags"}]}`` with ``PendingReview`` / ``Blocked`` / ``NotBlocked``.
- ``POST /SubmitHashes`` ``{"count": n, "hashRecords": [{"lastModtimestamp", "signalType",
  "hashValue", "CSPFeedbacks": [{"feedbackValue": "Blocked", "tags": []}]}]}`` (opt-in banks only).

Record semantics (ours): a hash is active while any of its case numbers is ``Active`` (or
``Received``); ``Withdrawn``/``Deleted`` (the hash's status, or every one of its cases) removes it.
``ImagePDQ`` -> ``pdq`` and ``VideoMD5`` -> ``md5`` match; ``VideoTMK`` is kept, not matched.
"""

from __future__ import annotations

import time
from typing import Any, Iterator

from consentry import fastjson
from consentry.banks.formats import stopncii as fmt
from consentry.banks.formats.records import HashRecord, RecordError
from consentry.exchanges._http import Http, HttpStatus
from consentry.exchanges.base import ExchangeError
from consentry.exchanges.programs import MAX_KEPT_VALUE, Batch

BANK_KIND = "ncii"
DEFAULT_URL = "https://api.stopncii.org/v1"
DEFAULT_START = 10  # pytx's DEFAULT_START_TIME
PAGE_SIZE = 800
FEEDBACK_BATCH = 100
CHECKPOINT_KEYS = ("cursor", "next_set_timestamp", "last_fetch_time")
STATUS_VALUES = {"pending_review": "PendingReview", "blocked": "Blocked", "not_blocked": "NotBlocked"}
SUBMIT_TYPES = {"pdq": "ImagePDQ", "md5": "VideoMD5"}
_ACTIVE = {"active", "received"}
_REMOVED = {"withdrawn", "deleted"}
MAX_RECORDS_PER_PAGE = 100_000


def parse_credentials(raw: Any) -> dict[str, str]:
    """JSON ``{"subscription_key", "fetch_function_key", "feedback_function_key"?,
    "submit_function_key"?}``, or pytx's one-line ``fetch_function_key,subscription_key``."""
    if isinstance(raw, str):
        parts = [p.strip() for p in raw.split(",")]
        if len(parts) != 2:
            raise ExchangeError("StopNCII credentials: a JSON object, or 'fetch_function_key,subscription_key'")
        raw = {"fetch_function_key": parts[0], "subscription_key": parts[1]}
    allowed = ("subscription_key", "fetch_function_key", "feedback_function_key", "submit_function_key")
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ExchangeError(f"StopNCII credentials: unknown field(s) {', '.join(unknown)}")
    out = {k: str(raw[k]).strip() for k in allowed if raw.get(k)}
    if not out.get("subscription_key") or not out.get("fetch_function_key"):
        raise ExchangeError("StopNCII credentials need subscription_key and fetch_function_key")
    return out


def check_options(options: dict[str, str], environment: str) -> dict[str, str]:
    known = {"base_url", "page_size", "submit_banks", "bank_kind", "start_timestamp", "source_tag"}
    bad = sorted(set(options) - known)
    if bad:
        raise ExchangeError(f"unknown StopNCII option(s): {', '.join(bad)}")
    if environment == "test" and not options.get("base_url"):
        raise ExchangeError("StopNCII publishes no test URL: give the one from onboarding with --option base_url=")
    for k in ("page_size", "start_timestamp"):
        if k in options and not options[k].isdigit():
            raise ExchangeError(f"option {k} must be a whole number")
    return options


def default_url(environment: str, options: dict[str, str]) -> str:
    return DEFAULT_URL


def record_from(obj: Any, position: str, exchange: str) -> HashRecord | RecordError | tuple[str, str, str]:
    """One StopNCII hash record -> an add/remove HashRecord, a kept (tmk) signal or a RecordError."""
    if not isinstance(obj, dict):
        return RecordError(position, "hash record must be a JSON object")
    stype = obj.get("signalType")
    cases = obj.get("caseNumbers")
    case_states = ([str(v).strip().lower() for v in cases.values()] if isinstance(cases, dict) else [])
    status = str(obj.get("hashStatus") or "").strip().lower()
    if case_states:
        active = any(c in _ACTIVE for c in case_states)  # one live case keeps the hash
    else:
        active = status not in _REMOVED
    if status and status not in _ACTIVE | _REMOVED and not case_states:
        return RecordError(position, f"unknown hashStatus {fmt.shorten(status, 40)}")
    if isinstance(stype, str) and stype.strip().lower() == "videotmk":
        value = obj.get("hashValue")
        if not isinstance(value, str) or not value.strip():
            return RecordError(position, "missing VideoTMK value")
        if len(value) > MAX_KEPT_VALUE:
            return RecordError(position, "VideoTMK value is too large")
        return ("tmk", value.strip(), "add" if active else "remove")
    rec = fmt.convert(obj, position)
    if isinstance(rec, RecordError):
        return rec
    rec.op = "add" if active else "remove"
    rec.source = f"exchange:{exchange}"
    return rec


class Client:
    def __init__(self, url: str, creds: dict[str, str], *, options: dict[str, Any] | None = None,
                 environment: str = "production", name: str = "stopncii", **http_kw: Any):
        self.url, self.creds, self.options, self.name = url.rstrip("/"), creds, dict(options or {}), name
        self.http = Http(self.url, "StopNCII", headers={"Ocp-Apim-Subscription-Key": creds["subscription_key"]},
                         **http_kw)
        self.page_size = int(self.options.get("page_size") or PAGE_SIZE)

    def close(self) -> None:
        self.http.close()

    def _fkey(self, which: str) -> dict[str, str]:
        key = self.creds.get(which)
        if not key:
            raise ExchangeError(f"StopNCII: no {which} in the credentials (rotate-credentials to add it)")
        return {"x-functions-key": key}

    def _json(self, body: bytes) -> Any:
        try:
            return fastjson.loads(body)
        except ValueError:
            raise ExchangeError("StopNCII sent something that is not JSON") from None

    def fetch_page(self, start: int, token: str) -> dict[str, Any]:
        params: dict[str, Any] = {"startTimestamp": start, "pageSize": self.page_size}
        if token:
            params["nextPageToken"] = token
        _, body = self.http.request("GET", self.url + "/FetchHashes", params=params,
                                    headers=self._fkey("fetch_function_key"))
        page = self._json(body)
        if not isinstance(page, dict) or not isinstance(page.get("hashRecords", []), list):
            raise ExchangeError("StopNCII's FetchHashes answer has an unexpected shape")
        if len(page.get("hashRecords") or []) > MAX_RECORDS_PER_PAGE:
            raise ExchangeError("StopNCII sent too many records in one page")
        return page

    def fetch(self, state: dict[str, Any]) -> Iterator[Batch]:
        start = int(state.get("next_set_timestamp") or self.options.get("start_timestamp") or DEFAULT_START)
        token, restarted, n, last_ts = "", False, 0, start
        while True:
            try:
                page = self.fetch_page(start, token)
            except HttpStatus as exc:
                if token and not restarted and 400 <= exc.status < 500:
                    token, restarted = "", True  # the page token expired: run again from the checkpoint
                    continue
                raise
            batch = Batch()
            for obj in page.get("hashRecords") or []:
                n += 1
                batch.rows += 1
                r = record_from(obj, f"record {n}", self.name)
                if isinstance(r, tuple):
                    batch.kept.append(r)
                else:
                    batch.records.append(r)
            ts = page.get("nextSetTimestamp")
            if isinstance(ts, int) and not isinstance(ts, bool) and ts >= 0:
                last_ts = ts
            more = page.get("hasMoreRecords") is True
            next_token = page.get("nextPageToken") or ""
            if more and (not isinstance(next_token, str) or not next_token or next_token == token):
                raise ExchangeError("StopNCII said there are more records but gave no new nextPageToken")
            if not more:  # the run is complete: now (and only now) the checkpoint moves
                batch.state = {"next_set_timestamp": last_ts, "cursor": last_ts, "last_fetch_time": int(time.time())}
            yield batch
            if not more:
                return
            token = next_token

    # ------------------------------------------------------------ feedback
    def send(self, items: list[Any]) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        fb = [i for i in items if i.kind == "feedback"]
        sub = [i for i in items if i.kind == "submit"]
        tag = self.options.get("source_tag")
        for i in range(0, len(fb), FEEDBACK_BATCH):
            chunk = fb[i : i + FEEDBACK_BATCH]
            rows = [{"hashValue": it.value, "feedbackValue": STATUS_VALUES[it.status],
                     "tags": [tag] if tag else []} for it in chunk]
            self._post("/SubmitFeedback", "feedback_function_key", {"count": len(rows), "hashFeedbacks": rows})
            out.update({it.id: None for it in chunk})
        for i in range(0, len(sub), FEEDBACK_BATCH):
            chunk = sub[i : i + FEEDBACK_BATCH]
            now = int(time.time())
            rows = [{"lastModtimestamp": now, "signalType": SUBMIT_TYPES[it.signal_type], "hashValue": it.value,
                     "CSPFeedbacks": [{"feedbackValue": "Blocked", "tags": [tag] if tag else []}]} for it in chunk]
            self._post("/SubmitHashes", "submit_function_key", {"count": len(rows), "hashRecords": rows})
            out.update({it.id: None for it in chunk})
        return out

    def _post(self, path: str, key: str, payload: dict[str, Any]) -> None:
        self.http.request("POST", self.url + path, json=payload, headers=self._fkey(key), retry=False)

    @staticmethod
    def feedback_for(status: str, signal_type: str) -> bool:
        return status in STATUS_VALUES and signal_type in ("pdq", "md5")
