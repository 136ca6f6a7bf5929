"""The helpline side: build the hashes document offline and talk to a hub's public victim API.

``consentry victim hash`` writes the same fields the victim page sends (``kind``, ``md5``,
``pdq``, ``pdq_quality`` with ``pdq_variants``, or ``vpdq``) and nothing else: no paths, names,
sizes or dates.
"""

from __future__ import annotations

import json
from typing import Any, Iterable
from urllib.parse import quote

import httpx

from consentry import __version__
from consentry.hashing import HashResult
from consentry.victims.cases import BadSubmission, VictimError, media_from_json

MAX_DOCUMENT = 4 * 1024 * 1024


def hashes_document(results: Iterable[HashResult | tuple[HashResult, list]]) -> tuple[dict[str, Any], list[HashResult]]:
    """(document, failed results). Only hashes go in the document. A result may come with its
    picture's canonical variants (:func:`consentry.hashing.hash_path_for_bank`), sent as
    ``pdq_variants`` as the victim page sends them."""
    from consentry.signals import PDQ_MIN_QUALITY

    items, failed = [], []
    for got in results:
        r, variants = got if isinstance(got, tuple) else (got, [])
        if not r.ok or r.md5 is None:
            failed.append(r)
            continue
        item: dict[str, Any] = {"kind": r.content_type, "md5": r.md5}
        if r.pdq:
            item.update(pdq=r.pdq, pdq_quality=r.pdq_quality)
            kept = [{"kind": v.kind, "pdq": v.value, "quality": int(v.quality)} for v in variants
                    if int(v.quality) >= PDQ_MIN_QUALITY and v.value != r.pdq]
            if kept:
                item["pdq_variants"] = kept
        if r.vpdq:
            item["vpdq"] = list(r.vpdq)
        items.append(item)
    return {"version": 1, "items": items}, failed


def read_document(raw: bytes) -> dict[str, Any]:
    if len(raw) > MAX_DOCUMENT:
        raise BadSubmission(f"the hashes file is over {MAX_DOCUMENT} bytes")
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BadSubmission("the hashes file is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise BadSubmission("the hashes file has no 'items' list (make it with `consentry victim hash`)")
    media_from_json(doc["items"])  # validate before anything is sent
    return doc


class HubError(VictimError):
    code = "hub_error"


def _call(url: str, body: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    try:
        r = httpx.post(url, json=body, timeout=timeout, follow_redirects=False,
                       headers={"User-Agent": f"consentry/{__version__} victim"})
    except httpx.HTTPError as exc:
        raise HubError(f"cannot reach the hub: {type(exc).__name__}") from None
    try:
        data = r.json()
    except ValueError:
        raise HubError(f"the hub answered {r.status_code} with something that is not JSON") from None
    if r.status_code >= 400:
        raise HubError(str(data.get("detail") if isinstance(data, dict) else data)[:300])
    return data


def submit(hub: str, doc: dict[str, Any], pin: str) -> dict[str, Any]:
    body = {"version": 1, "items": doc["items"], "pin": pin, "depicted_adult": True}
    return _call(hub.rstrip("/") + "/v1/victim/cases", body)


def case_action(hub: str, case: str, pin: str, action: str) -> dict[str, Any]:
    if action not in ("status", "withdraw"):
        raise ValueError(action)
    return _call(f"{hub.rstrip('/')}/v1/victim/cases/{quote(case.strip(), safe='')}/{action}", {"pin": pin})
