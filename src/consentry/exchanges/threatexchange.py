"""Meta ThreatExchange client (``--type threatexchange``): Graph API, one or more privacy groups.

Wire format as python-threatexchange describes it (``exchanges/clients/fb_threatexchange/api.py``,
``threat_updates.py``, ``exchanges/impl/fb_threatexchange_api.py``):

- Base URL ``https://graph.facebook.com/v21.0``; an app access token (``<app id>|<secret>``).
  pytx puts it in the query string; we send it as ``Authorization: OAuth <token>`` (which the Graph
  API accepts) so it is not in URLs we build — a real onboarding should confirm this.
- ``GET /{privacy group}/threat_updates/?start_time=&limit=&fields=id,indicator,type,last_updated,
  should_delete,descriptors{id,owner{id},status,tags,...}`` pages through ``data`` following
  ``paging.next`` (same host only). An update with ``should_delete`` (or without descriptors) is a
  tombstone. Updates come in ``last_updated`` order, so the checkpoint (per privacy group) is saved
  after every page; ThreatExchange keeps tombstones for 90 days: a checkpoint older than 85 days is
  reported stale (a full re-fetch is then needed to honour deletions).
- Types: ``HASH_PDQ`` -> ``pdq``; ``HASH_MD5`` and ``HASH_VIDEO_MD5`` -> ``md5``. Other types are
  skipped. Descriptor tags become entry tags; ``--option require_tags=a,b`` keeps only indicators
  carrying one of them. An indicator whose every descriptor is ``NON_MALICIOUS`` is not kept.
- Feedback: reactions ``POST /{descriptor id}`` with ``reactions=<REACTION>``: a match opened for
  review -> ``SAW_THIS_TOO``; confirmed -> ``HELPFUL``; dismissed -> ``DISAGREE_WITH_TAGS``.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

from consentry.banks.formats._util import make_record
from consentry.banks.formats.records import HashRecord, RecordError
from consentry.exchanges._http import Http, HttpStatus
from consentry.exchanges.base import ExchangeError
from consentry.exchanges.programs import Batch

BANK_KIND = "custom"
DEFAULT_URL = "https://graph.facebook.com/v21.0"
CHECKPOINT_KEYS = ("cursor", "groups", "last_fetch_time")
TYPES = {"HASH_PDQ": "pdq", "HASH_MD5": "md5", "HASH_VIDEO_MD5": "md5"}
REACTIONS = {"pending_review": "SAW_THIS_TOO", "blocked": "HELPFUL", "not_blocked": "DISAGREE_WITH_TAGS"}
FIELDS = ("id,indicator,type,last_updated,should_delete,"
          "descriptors{id,owner{id},status,tags,added_on,reactions,my_reactions}")
PAGE_SIZE = 500
MAX_ITEMS_PER_PAGE = 10_000


def parse_credentials(raw: Any) -> dict[str, str]:
    """JSON ``{"access_token": "<app id>|<secret>"}`` or the token on one line."""
    token = raw if isinstance(raw, str) else str(raw.get("access_token") or "")
    if not isinstance(raw, str) and sorted(set(raw) - {"access_token"}):
        raise ExchangeError("ThreatExchange credentials: only access_token is expected")
    token = token.strip()
    if not token or "|" not in token or "\n" in token or len(token) > 500:
        raise ExchangeError("ThreatExchange credentials: an app access token '<app id>|<secret>'")
    return {"access_token": token}


def check_options(options: dict[str, str], environment: str) -> dict[str, str]:
    known = {"base_url", "privacy_groups", "require_tags", "bank_kind", "page_size"}
    bad = sorted(set(options) - known)
    if bad:
        raise ExchangeError(f"unknown ThreatExchange option(s): {', '.join(bad)}")
    groups = [g.strip() for g in options.get("privacy_groups", "").split(",") if g.strip()]
    if not groups or not all(g.isdigit() for g in groups):
        raise ExchangeError("ThreatExchange needs --option privacy_groups=<id>[,<id>...]")
    options["privacy_groups"] = ",".join(groups)
    if environment == "test" and not options.get("base_url"):
        raise ExchangeError("ThreatExchange has no test twin: use a test privacy group, or --option base_url=")
    return options


def default_url(environment: str, options: dict[str, str]) -> str:
    return DEFAULT_URL


def _tags(d: dict[str, Any]) -> list[str]:
    tags = d.get("tags") or []
    if isinstance(tags, dict):
        tags = [t.get("text") for t in tags.get("data") or [] if isinstance(t, dict)]
    return [str(t)[:100] for t in tags if isinstance(t, str) and t]


def record_from(u: Any, position: str, exchange: str, require: set[str]) -> HashRecord | RecordError | None:
    if not isinstance(u, dict):
        return RecordError(position, "update must be a JSON object")
    st = TYPES.get(str(u.get("type") or ""))
    if st is None:
        return None  # a type this instance does not use
    descriptors = (u.get("descriptors") or {}).get("data") if isinstance(u.get("descriptors"), dict) else None
    descriptors = [d for d in descriptors or [] if isinstance(d, dict) and "owner" in d]
    tags: list[str] = []
    for d in descriptors:
        tags += [t for t in _tags(d) if t not in tags]
    live = [d for d in descriptors if d.get("status") != "NON_MALICIOUS"]
    remove = bool(u.get("should_delete")) or not live or (require and not require & set(tags))
    ext = [f"te:{d['id']}" for d in (live or descriptors) if str(d.get("id", "")).isdigit()][:20]
    if str(u.get("id", "")).isdigit():
        ext.append(f"te-indicator:{u['id']}")
    meta: dict[str, Any] = {}
    if isinstance(u.get("last_updated"), (int, str)):
        meta["last_updated"] = str(u["last_updated"])[:40]
    return make_record(f"exchange:{exchange}", position, st, u.get("indicator"), op="remove" if remove else "add",
                       external_ids=ext, tags=tags[:50], meta=meta)


class Client:
    def __init__(self, url: str, creds: dict[str, str], *, options: dict[str, Any] | None = None,
                 environment: str = "production", name: str = "threatexchange", **http_kw: Any):
        self.url, self.options, self.name = url.rstrip("/"), dict(options or {}), name
        self.http = Http(self.url, "ThreatExchange", headers={"Authorization": f"OAuth {creds['access_token']}"},
                         **http_kw)
        self.groups = [g for g in str(self.options.get("privacy_groups") or "").split(",") if g]
        self.require = {t.strip() for t in str(self.options.get("require_tags") or "").split(",") if t.strip()}

    def close(self) -> None:
        self.http.close()

    def fetch(self, state: dict[str, Any]) -> Iterator[Batch]:
        groups_state = dict(state.get("groups") or {})
        n = 0
        for group in self.groups:
            since = int(groups_state.get(group) or 0)
            url = f"{self.url}/{group}/threat_updates/"
            params: dict[str, Any] | None = {"fields": FIELDS, "limit": int(self.options.get("page_size") or PAGE_SIZE)}
            if since:
                params["start_time"] = since
            highest = since
            while url:
                _, body = self.http.request("GET", url, params=params)
                try:
                    page = json.loads(body)
                except ValueError:
                    raise ExchangeError("ThreatExchange sent something that is not JSON") from None
                if not isinstance(page, dict) or not isinstance(page.get("data", []), list):
                    raise ExchangeError("ThreatExchange's threat_updates answer has an unexpected shape")
                data = page.get("data") or []
                if len(data) > MAX_ITEMS_PER_PAGE:
                    raise ExchangeError("ThreatExchange sent too many updates in one page")
                batch = Batch(rows=len(data))
                for u in data:
                    n += 1
                    r = record_from(u, f"update {n}", self.name, self.require)
                    if r is not None:
                        batch.records.append(r)
                    try:
                        highest = max(highest, int((u or {}).get("last_updated") or 0))
                    except (TypeError, ValueError, AttributeError):
                        pass
                groups_state[group] = highest
                batch.state = {"groups": dict(groups_state), "cursor": max(groups_state.values() or [0]),
                               "last_fetch_time": int(time.time())}
                yield batch
                nxt = (page.get("paging") or {}).get("next") if isinstance(page.get("paging"), dict) else None
                url, params = (self.http.check_origin(nxt), None) if isinstance(nxt, str) and nxt else ("", None)

    def send(self, items: list[Any]) -> dict[int, str | None]:
        out: dict[int, str | None] = {}
        for it in items:
            ids = [e[3:] for e in (it.external_id or "").split(",") if e.startswith("te:") and e[3:].isdigit()]
            if not ids or it.status not in REACTIONS:
                out[it.id] = "no ThreatExchange descriptor to react to"
                continue
            try:
                for descriptor in ids[:5]:
                    self.http.request("POST", f"{self.url}/{descriptor}", data={"reactions": REACTIONS[it.status]},
                                      retry=False)
            except HttpStatus as exc:
                out[it.id] = f"ThreatExchange answered HTTP {exc.status}"
                continue
            out[it.id] = None
        return out

    @staticmethod
    def feedback_for(status: str, signal_type: str) -> bool:
        return status in REACTIONS and signal_type in ("pdq", "md5")
