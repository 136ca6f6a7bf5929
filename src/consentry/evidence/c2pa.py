"""C2PA provenance: what do the Content Credentials of a file claim, and can they be believed?

:func:`analyze_c2pa` reads the manifest store embedded in a file with c2pa-python (c2pa-rs is
the parser and validator), fully offline: no remote manifest fetch, no OCSP, no network host
allowed.  It reports four things separately (DESIGN.md section 7):

* **integrity**: did the hashes and signatures check out (``assertion.dataHash.match`` /
  ``.mismatch``, ``claimSignature.validated`` / ``.mismatch``, …)?  A failure means the content
  or the manifest changed after signing.
* **signer**: issuer (organisation), common name, signing time when the manifest carries one.
* **trust**: ``trusted`` (the signer chains to the official C2PA trust list), ``trusted_interim``
  (trusted only under the Content Authenticity Initiative's legacy *interim* list, frozen on
  2026-01-01; Adobe's production signatures are in this case), ``untrusted`` or ``expired``.
  The official list is tried first; only a signer it does not trust is validated again with the
  interim list, so an interim result always says so.
* **claims**: every manifest in the store and every ingredient is walked (the AI source type
  can sit in an ingredient's manifest, not the active one) for IPTC ``digitalSourceType``,
  actions (``c2pa.created``, ``c2pa.opened``, ``c2pa.cropped``, AI edits…), ``softwareAgent``
  and the claim generator.

Strength of each :class:`Evidence` item (``source="c2pa"``): ``proof`` only when integrity is ok
and every signer on the path from the active manifest to the claiming manifest is trusted
(official or interim; interim adds a caveat naming the legacy list); integrity ok but a signer
untrusted or expired → ``strong`` with a caveat; integrity failed → ``weak`` with a caveat.

Bounds on untrusted input: the file is refused above :data:`MAX_C2PA_INPUT_BYTES` (512 MiB, the
same bound :mod:`consentry.evidence.assess` applies); c2pa-rs is told not to decompress a
manifest above :data:`MAX_DECOMPRESSED_MANIFEST_MB`; the manifest-store JSON it returns is
refused above :data:`MAX_STORE_JSON_CHARS`; the walk visits at most :data:`MAX_MANIFESTS`
manifests, :data:`MAX_INGREDIENTS` ingredients and :data:`MAX_ACTIONS` actions per manifest,
nests at most :data:`MAX_DEPTH` ingredients deep, and truncates every string it reports.
Any parser error becomes a note, never an exception.
"""

from __future__ import annotations

import io
import json
import re
from collections import deque
from dataclasses import dataclass, field, replace
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable

from consentry.evidence.model import Evidence, Findings

SOURCE = "c2pa"

MAX_C2PA_INPUT_BYTES = 512 * 1024 * 1024
MAX_DECOMPRESSED_MANIFEST_MB = 64
MAX_STORE_JSON_CHARS = 32 * 1024 * 1024
MAX_MANIFESTS = 64
MAX_INGREDIENTS = 128
MAX_ACTIONS = 256
MAX_DEPTH = 16
MAX_STR = 300
MAX_CODES = 200

#: Names given to the trust lists in c2pa's settings; they come back in its status explanations
#: ("signing certificate trusted, found in [cai-interim] trust anchors").
LIST_OFFICIAL = "c2pa-trust-list"
LIST_TSA = "c2pa-tsa-trust-list"
LIST_INTERIM = "cai-interim"
INTERIM_CAVEAT = (
    "signed under the legacy interim trust list (Content Authenticity Initiative known-certificate "
    "list, frozen 2026-01-01), not the official C2PA trust list"
)

TRUSTED, TRUSTED_INTERIM, UNTRUSTED, EXPIRED = "trusted", "trusted_interim", "untrusted", "expired"
_TRUST_RANK = {TRUSTED: 3, TRUSTED_INTERIM: 2, EXPIRED: 1, UNTRUSTED: 0}

IPTC_PREFIXES = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/",
    "https://cv.iptc.org/newscodes/digitalsourcetype/",
    "http://c2pa.org/digitalsourcetype/",
    "https://c2pa.org/digitalsourcetype/",
)
#: IPTC DigitalSourceType term → the claim it supports (None: reported, no claim).
SOURCE_TYPE_CLAIMS: dict[str, str | None] = {
    "trainedAlgorithmicMedia": "ai_generated",
    "trainedAlgorithmicData": "ai_generated",
    # IPTC: "created purely by an algorithm not based on sampled training data" (a gradient, a
    # fractal): computer-generated, not AI; neither IPTC nor the C2PA tools count it as AI.
    "algorithmicMedia": "computer_generated",
    "compositeWithTrainedAlgorithmicMedia": "ai_edited",
    # "at least one element is synthetic": AI or a non-learned algorithm; the item is capped at weak.
    "compositeSynthetic": "ai_edited",
    "digitalCapture": "camera_captured",
    "computationalCapture": "camera_captured",
    "compositeCapture": "camera_captured",
    "negativeFilm": "camera_captured",
    "positiveFilm": "camera_captured",
    "humanEdits": "edited",
    "minorHumanEdits": "edited",
    "composite": "edited",
    "algorithmicallyEnhanced": "edited",
    "print": None,
    "digitalArt": None,
    "digitalCreation": None,
    "softwareImage": None,
    "dataDrivenMedia": None,
    "screenCapture": None,
    "virtualRecording": None,
    "empty": None,
}
SOURCE_TYPE_WORDS = {
    "trainedAlgorithmicMedia": "created by a trained AI model",
    "trainedAlgorithmicData": "created by a trained AI model",
    "algorithmicMedia": "created purely by an algorithm not based on sampled training data",
    "compositeWithTrainedAlgorithmicMedia": "a composite including AI-generated elements",
    "compositeSynthetic": "a composite including synthetic elements",
}
#: Terms whose AI claim is ambiguous (the synthetic part may be AI or a non-learned algorithm):
#: the item is never more than ``weak``, so on its own it gives an ``inconclusive`` verdict.
AMBIGUOUS_AI_TERMS = frozenset({"compositeSynthetic"})
#: Failure codes that mean the *content* (not only the manifest) changed after signing.
CONTENT_HASH_FAILURES = ("assertion.dataHash.mismatch", "assertion.bmffHash.mismatch",
                         "assertion.boxesHash.mismatch", "assertion.collectionHash.mismatch")
#: Actions that do not change what the content shows.
NON_EDITORIAL_ACTIONS = frozenset({
    "c2pa.created", "c2pa.opened", "c2pa.published", "c2pa.repackaged", "c2pa.transcoded",
    "c2pa.converted", "c2pa.edited.metadata", "c2pa.watermarked", "c2pa.watermarked.bound",
    "c2pa.watermarked.unbound", "c2pa.unknown",
})
#: Actions whose digitalSourceType describes the origin of the content (not an edit).
ORIGIN_ACTIONS = frozenset({"c2pa.created", "c2pa.opened"})
#: Failure codes about trust or time, not integrity (the content and claim are unchanged).
_TRUST_FAILURES = ("signingCredential.untrusted", "signingCredential.expired",
                   "signingCredential.revoked", "signingCredential.ocsp.", "claimSignature.outsideValidity",
                   "timeStamp.")
_LABEL_IN_URL = re.compile(r"/c2pa/([^/]+)")
_FOUND_IN_LIST = re.compile(r"found in \[([^\]]*)\]")


# --------------------------------------------------------------------------- trust lists


def _shipped(name: str) -> Path:
    return Path(str(resources.files("consentry.evidence").joinpath("trust", name)))


@dataclass(frozen=True)
class TrustLists:
    """Where the trust anchors come from (PEM bundles; ``trust_config`` lists the allowed EKUs).

    ``anchors`` are the claim-signing roots of the first pass (the official C2PA trust list,
    and any operator or test CA); ``tsa_anchors`` the time-stamping authorities; the interim
    fields the legacy CAI list tried in a second pass for signers the first pass does not trust.
    """

    anchors: tuple[Path, ...] = ()
    tsa_anchors: tuple[Path, ...] = ()
    interim_anchors: tuple[Path, ...] = ()
    interim_allowed: tuple[Path, ...] = ()
    trust_config: Path | None = None

    @classmethod
    def default(cls) -> "TrustLists":
        """The lists shipped in ``consentry/evidence/trust/`` (see docs/evidence-c2pa.md)."""
        return cls(
            anchors=(_shipped("C2PA-TRUST-LIST.pem"),),
            tsa_anchors=(_shipped("C2PA-TSA-TRUST-LIST.pem"),),
            interim_anchors=(_shipped("interim-anchors.pem"),),
            interim_allowed=(_shipped("interim-allowed.pem"),),
            trust_config=_shipped("interim-store.cfg"),
        )

    def with_anchors(self, *paths: str | Path) -> "TrustLists":
        """These lists plus more claim-signing roots (e.g. an operator's own CA)."""
        return replace(self, anchors=self.anchors + tuple(Path(p) for p in paths))

    @property
    def has_interim(self) -> bool:
        return bool(self.interim_anchors or self.interim_allowed)


@lru_cache(maxsize=64)
def _read_text(path: Path, mtime_ns: int) -> str:  # mtime in the key: an edited list is re-read
    return path.read_text(encoding="utf-8", errors="replace")


def _bundle(paths: Iterable[Path]) -> str:
    parts = []
    for p in paths:
        p = Path(p)
        parts.append(_read_text(p, p.stat().st_mtime_ns))
    return "\n".join(parts)


_PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----[A-Za-z0-9+/=\s]+?-----END CERTIFICATE-----")


def _pem_body(block: str) -> str:
    return "".join(block.split())


def _settings(trust: TrustLists, *, interim: bool) -> dict[str, Any]:
    anchors: list[dict[str, Any]] = []
    if trust.anchors:
        anchors.append({"trust_anchors": _bundle(trust.anchors), "trust_uri": LIST_OFFICIAL,
                        "trust_kind": "manifest"})
    if trust.tsa_anchors:
        # Roots on both lists (16 of the official 30) go only in the official entry, so that a
        # claim signer chaining to one is reported as found there, not in the TSA list.
        official = {_pem_body(b) for b in _PEM_BLOCK.findall(_bundle(trust.anchors))} if trust.anchors else set()
        tsa_only = [b for b in _PEM_BLOCK.findall(_bundle(trust.tsa_anchors)) if _pem_body(b) not in official]
        if tsa_only:
            anchors.append({"trust_anchors": "\n".join(tsa_only), "trust_uri": LIST_TSA, "trust_kind": "tsa"})
    if interim and trust.has_interim:
        entry: dict[str, Any] = {"trust_anchors": _bundle(trust.interim_anchors), "trust_uri": LIST_INTERIM,
                                 "trust_kind": "manifest"}
        if trust.interim_allowed:
            entry["allowed_list"] = _bundle(trust.interim_allowed)
        anchors.append(entry)
    trust_settings: dict[str, Any] = {}
    if anchors:
        trust_settings["anchors"] = anchors
    if trust.trust_config is not None:
        trust_settings["trust_config"] = _bundle([trust.trust_config])
    return {
        "verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True,
                   "verify_after_reading": True},
        "core": {"allowed_network_hosts": [], "max_decompressed_manifest_size_in_mb": MAX_DECOMPRESSED_MANIFEST_MB},
        "trust": trust_settings,
    }


# --------------------------------------------------------------------------- reading


class _ReadProblem(Exception):
    """The store exists but could not be read; ``str()`` is the note."""


def _short(value: Any, limit: int = MAX_STR) -> str:
    s = str(value)
    return s if len(s) <= limit else s[: limit - 1] + "…"


def _read_store(data: bytes, mime: str | None, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The manifest store as c2pa's JSON dict, ``None`` when there is none."""
    import c2pa

    fmt = mime if mime and mime in _supported_mimes() else None
    ctx = c2pa.Context.from_dict(settings)
    try:
        reader = c2pa.Reader.try_create(fmt, io.BytesIO(data), None, ctx)
        if reader is None:
            return None
        try:
            text = reader.json()
        finally:
            reader.close()
    finally:
        ctx.close()
    if len(text) > MAX_STORE_JSON_CHARS:
        raise _ReadProblem(f"c2pa: manifest store too large to report ({len(text)} characters, "
                           f"limit {MAX_STORE_JSON_CHARS})")
    store = json.loads(text)
    if not isinstance(store, dict):
        raise _ReadProblem("c2pa: manifest store is not a JSON object")
    return store


@lru_cache(maxsize=1)
def _supported_mimes() -> frozenset[str]:
    import c2pa

    return frozenset(c2pa.Reader.get_supported_mime_types())


def _error_note(exc: BaseException, mime: str | None = None) -> str:
    msg = _short(str(exc) or type(exc).__name__, 200)
    if _is_remote_error(exc):
        url = _remote_url(str(exc))
        return f"c2pa: remote manifest, not fetched (offline){': ' + url if url else ''}"
    if "NotSupported" in type(exc).__name__ or msg.startswith("NotSupported") or "naked codestream" in msg:
        return (f"c2pa: not checked: the C2PA library cannot read Content Credentials in this file's format"
                f"{' (' + mime + ')' if mime else ''}: {msg}")
    return f"c2pa: the Content Credentials could not be read (malformed or truncated manifest): {msg}"


# --------------------------------------------------------------------------- validation status


@dataclass
class _Status:
    """Validation status codes of one manifest: current (this read) and recorded (ingredient)."""

    current: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, code, explanation)
    recorded: list[tuple[str, str, str]] = field(default_factory=list)

    def codes(self) -> list[tuple[str, str, str]]:
        return self.current + self.recorded

    def integrity_failures(self) -> list[str]:
        return sorted({c for kind, c, _ in self.codes() if kind == "failure" and not c.startswith(_TRUST_FAILURES)})

    def trust_codes(self) -> list[tuple[str, str, str]]:
        def pick(items: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
            return [t for t in items if t[1].startswith("signingCredential.") and ".ocsp." not in t[1]
                    or t[1] == "claimSignature.outsideValidity"]

        return pick(self.current) or pick(self.recorded)


def _label_of(url: Any, labels: set[str], default: str | None) -> str | None:
    if isinstance(url, str):
        m = _LABEL_IN_URL.search(url)
        if m and m.group(1) in labels:
            return m.group(1)
        if url in labels:
            return url
    return default


def _section_codes(section: Any) -> list[tuple[str, Any, str, str]]:
    """(kind, url, code, explanation) from a {success, informational, failure} section."""
    out: list[tuple[str, Any, str, str]] = []
    if not isinstance(section, dict):
        return out
    for kind in ("success", "informational", "failure"):
        items = section.get(kind)
        if isinstance(items, list):
            for it in items[:MAX_CODES]:
                if isinstance(it, dict) and isinstance(it.get("code"), str):
                    out.append((kind, it.get("url"), _short(it["code"], 100),
                                _short(it.get("explanation", ""), 200)))
    return out


def _statuses(store: dict[str, Any], manifests: dict[str, Any], active: str) -> dict[str, _Status]:
    labels = set(manifests)
    st: dict[str, _Status] = {label: _Status() for label in labels}
    results = store.get("validation_results")
    if isinstance(results, dict):
        for kind, url, code, expl in _section_codes(results.get("activeManifest")):
            lab = _label_of(url, labels, active)
            if lab in st:
                st[lab].current.append((kind, code, expl))
        deltas = results.get("ingredientDeltas")
        for delta in (deltas if isinstance(deltas, list) else [])[:MAX_INGREDIENTS]:
            if not isinstance(delta, dict):
                continue
            holder = _label_of(delta.get("ingredientAssertionURI"), labels, active)
            for kind, url, code, expl in _section_codes(delta.get("validationDeltas")):
                lab = _label_of(url, labels, holder)
                if lab in st:
                    st[lab].current.append((kind, code, expl))
    else:  # older readers: a flat list of failures
        flat = store.get("validation_status")
        for it in (flat if isinstance(flat, list) else [])[:MAX_CODES]:
            if isinstance(it, dict) and isinstance(it.get("code"), str):
                lab = _label_of(it.get("url"), labels, active)
                if lab in st:
                    st[lab].current.append(("failure", _short(it["code"], 100), _short(it.get("explanation", ""), 200)))
    # What was recorded about each ingredient's manifest when it was added.
    for label, m in manifests.items():
        for ing in _ingredients(m):
            target = ing.get("active_manifest")
            if not isinstance(target, str) or target not in st:
                continue
            recorded = ing.get("validation_results")
            if isinstance(recorded, dict):
                for kind, url, code, expl in _section_codes(recorded.get("activeManifest")):
                    if _label_of(url, labels, target) == target:
                        st[target].recorded.append((kind, code, expl))
            elif isinstance(ing.get("validation_status"), list):
                for it in ing["validation_status"][:MAX_CODES]:
                    if isinstance(it, dict) and isinstance(it.get("code"), str):
                        st[target].recorded.append(("failure", _short(it["code"], 100), _short(it.get("explanation", ""), 200)))
    return st


def _trust_of(status: _Status) -> tuple[str, str | None]:
    """(trust, list name) from one pass's codes."""
    codes = status.trust_codes()
    names = {c for _, c, _ in codes}
    if "signingCredential.expired" in names or "claimSignature.outsideValidity" in names:
        return EXPIRED, None
    for kind, code, expl in codes:
        if code == "signingCredential.trusted" and kind == "success":
            m = _FOUND_IN_LIST.search(expl)
            list_name = m.group(1) if m else None
            if list_name == LIST_TSA:  # a time-stamping root is no claim-signing anchor
                return UNTRUSTED, list_name
            return TRUSTED, list_name
    return UNTRUSTED, None


# --------------------------------------------------------------------------- manifests


def _ingredients(manifest: Any) -> list[dict[str, Any]]:
    ings = manifest.get("ingredients") if isinstance(manifest, dict) else None
    return [i for i in (ings if isinstance(ings, list) else [])[:MAX_INGREDIENTS] if isinstance(i, dict)]


def source_type_term(value: Any) -> str | None:
    """``http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia`` → the term."""
    if not isinstance(value, str) or not value:
        return None
    v = value.strip()
    for p in IPTC_PREFIXES:
        if v.startswith(p):
            return _short(v[len(p):].strip("/"), 100)
    if v.startswith(("http://", "https://")):
        return _short(v.rstrip("/").rsplit("/", 1)[-1], 100)
    return _short(v, 100)


def _agent_name(agent: Any) -> str | None:
    if isinstance(agent, str):
        return _short(agent)
    if isinstance(agent, dict):
        name = agent.get("name")
        ver = agent.get("version")
        if isinstance(name, str):
            return _short(f"{name} {ver}" if isinstance(ver, (str, int, float)) else name)
    return None


def _find_source_types(obj: Any, depth: int = 0, budget: list[int] | None = None) -> list[str]:
    """``digitalSourceType`` / ``Iptc4xmpExt:DigitalSourceType`` values anywhere in an assertion."""
    budget = budget if budget is not None else [2000]
    found: list[str] = []
    if depth > 8 or budget[0] <= 0:
        return found
    budget[0] -= 1
    if isinstance(obj, dict):
        for k, v in list(obj.items())[:200]:
            if isinstance(k, str) and k.lower().endswith("digitalsourcetype"):
                vals = v if isinstance(v, list) else [v]
                for x in vals[:20]:
                    if isinstance(x, dict):
                        x = x.get("@id") or x.get("id")
                    t = source_type_term(x)
                    if t:
                        found.append(t)
            else:
                found.extend(_find_source_types(v, depth + 1, budget))
    elif isinstance(obj, list):
        for v in obj[:200]:
            found.extend(_find_source_types(v, depth + 1, budget))
    return found


def _describe(label: str, m: dict[str, Any]) -> dict[str, Any]:
    """The claim-relevant facts of one manifest, JSON-ready and bounded."""
    actions: list[dict[str, Any]] = []
    asset_types: list[str] = []
    assertions = m.get("assertions")
    for a in (assertions if isinstance(assertions, list) else [])[:MAX_ACTIONS]:
        if not isinstance(a, dict):
            continue
        alabel = a.get("label") if isinstance(a.get("label"), str) else ""
        data = a.get("data")
        if alabel.startswith("c2pa.actions") and isinstance(data, dict):
            agents = data.get("softwareAgents") if isinstance(data.get("softwareAgents"), list) else []
            acts = data.get("actions")
            for act in (acts if isinstance(acts, list) else [])[: MAX_ACTIONS - len(actions)]:
                if not isinstance(act, dict) or not isinstance(act.get("action"), str):
                    continue
                agent = _agent_name(act.get("softwareAgent"))
                idx = act.get("softwareAgentIndex")
                if agent is None and isinstance(idx, int) and 0 <= idx < len(agents):
                    agent = _agent_name(agents[idx])
                params = act.get("parameters") if isinstance(act.get("parameters"), dict) else {}
                entry: dict[str, Any] = {"action": _short(act["action"], 100)}
                dst = source_type_term(act.get("digitalSourceType"))
                if dst:
                    entry["digital_source_type"] = dst
                if agent:
                    entry["software_agent"] = agent
                refs = []
                linked = params.get("ingredients")
                linked = linked[:20] if isinstance(linked, list) else []
                if isinstance(params.get("ingredient"), dict):
                    linked = linked + [params["ingredient"]]
                for ref in linked:
                    if isinstance(ref, dict) and isinstance(ref.get("url"), str):
                        refs.append(ref["url"].rsplit("/", 1)[-1])  # the ingredient assertion's label
                for key in ("instanceId", "instanceID", "instance_id"):
                    if isinstance(params.get(key), str):
                        refs.append(params[key])
                if refs:
                    entry["ingredients"] = [_short(r, 200) for r in refs]
                actions.append(entry)
        elif isinstance(data, (dict, list)):
            asset_types.extend(_find_source_types(data))

    gen_info = m.get("claim_generator_info")
    generators = []
    for g in (gen_info if isinstance(gen_info, list) else [gen_info] if isinstance(gen_info, dict) else [])[:10]:
        name = _agent_name(g)
        if name:
            generators.append(name)
    sig = m.get("signature_info") if isinstance(m.get("signature_info"), dict) else {}
    signer = {k: _short(sig[k]) for k in ("issuer", "common_name", "time", "alg", "cert_serial_number")
              if isinstance(sig.get(k), (str, int))}
    ingredients = []
    for ing in _ingredients(m):
        ingredients.append({
            "title": _short(ing.get("title", "")),
            "relationship": _short(ing.get("relationship", "componentOf"), 50),
            "label": _short(ing.get("label", ""), 100),
            "instance_id": _short(ing.get("instance_id", ""), 200),
            "manifest": ing.get("active_manifest") if isinstance(ing.get("active_manifest"), str) else None,
        })
    return {
        "label": _short(label, 200),
        "title": _short(m.get("title", "")),
        "claim_generator": _short(m["claim_generator"]) if isinstance(m.get("claim_generator"), str) else None,
        "claim_generator_info": generators,
        "signer": signer,
        "asset_source_types": sorted(set(asset_types)),
        "actions": actions,
        "ingredients": ingredients,
    }


def _claims_of(desc: dict[str, Any]) -> dict[str, list[str]]:
    """claim → the source types / actions behind it, for one manifest on its own."""
    origin: list[str] = list(desc["asset_source_types"])
    edit_ai: list[str] = []
    edits: list[str] = []
    for act in desc["actions"]:
        name, dst = act["action"], act.get("digital_source_type")
        if name in ORIGIN_ACTIONS:
            if dst:
                origin.append(dst)
            continue
        if dst and SOURCE_TYPE_CLAIMS.get(dst) in ("ai_generated", "ai_edited"):
            edit_ai.append(f"{name} ({dst})")
        elif name not in NON_EDITORIAL_ACTIONS and name.startswith("c2pa."):
            edits.append(name)
    claims: dict[str, list[str]] = {}
    for t in origin:
        claim = SOURCE_TYPE_CLAIMS.get(t)
        if claim:
            claims.setdefault(claim, []).append(t)
    if edit_ai:
        claims.setdefault("ai_edited", []).extend(edit_ai)
    if "ai_generated" in claims:
        claims.pop("ai_edited", None)
        claims.pop("camera_captured", None)
    if edits:
        claims.setdefault("edited", []).extend(edits)
    if "ai_generated" in claims or "ai_edited" in claims:
        claims.pop("edited", None)  # the edits are reported, the AI claim subsumes them
        claims.pop("computer_generated", None)
    return {k: sorted(set(v)) for k, v in claims.items()}


def _is_ambiguous_ai(reasons: list[str]) -> bool:
    """Every reason for an AI claim is an ambiguous term (``compositeSynthetic``), bare or on an action."""
    terms = [r[r.find("(") + 1:-1] if r.endswith(")") and "(" in r else r for r in reasons]
    return bool(terms) and all(t in AMBIGUOUS_AI_TERMS for t in terms)


def _walk(manifests: dict[str, Any], active: str) -> dict[str, dict[str, Any]]:
    """Breadth-first from the active manifest through ingredients: role and path of each manifest.

    ``role``: ``active``; ``parent`` (reached only through parentOf / opened ingredients: the
    content *is* a derivative of it); ``component`` (a componentOf/inputTo link on the way: part
    of the content); ``unlinked`` (in the store but not reachable from the active manifest).
    """
    seen: dict[str, dict[str, Any]] = {active: {"role": "active", "path": [], "chain": [active]}}
    queue = deque([active])
    while queue and len(seen) < MAX_MANIFESTS:
        label = queue.popleft()
        here = seen[label]
        if len(here["chain"]) > MAX_DEPTH:
            continue
        m = manifests.get(label)
        desc_actions = _describe(label, m)["actions"] if isinstance(m, dict) else []
        opened_refs = {r for a in desc_actions if a["action"] in ORIGIN_ACTIONS for r in a.get("ingredients", [])}
        for ing in _ingredients(m):
            target = ing.get("active_manifest")
            if not isinstance(target, str) or target not in manifests or target in seen:
                continue
            rel = ing.get("relationship") if isinstance(ing.get("relationship"), str) else "componentOf"
            is_parent = rel == "parentOf" or ing.get("label") in opened_refs or ing.get("instance_id") in opened_refs
            role = "parent" if is_parent and here["role"] in ("active", "parent") else "component"
            seen[target] = {"role": role,
                            "path": here["path"] + [{"title": _short(ing.get("title", "")), "relationship": _short(rel, 50)}],
                            "chain": here["chain"] + [target]}
            queue.append(target)
    for label in list(manifests)[:MAX_MANIFESTS]:
        seen.setdefault(label, {"role": "unlinked", "path": [], "chain": [label]})
    return seen


# --------------------------------------------------------------------------- evidence


_CLAIM_WORDS = {
    "ai_generated": "was generated by AI",
    "ai_edited": "was edited with AI or includes AI-generated parts",
    "edited": "was edited",
    "camera_captured": "was captured with a camera",
    "computer_generated": "was created by a non-learned algorithm (computer-generated, not declared as AI)",
}
_TRUST_WORDS = {
    TRUSTED: "trusted (official C2PA trust list)",
    TRUSTED_INTERIM: "trusted under the legacy interim trust list",
    UNTRUSTED: "not on a configured trust list",
    EXPIRED: "using an expired certificate",
}


def _signer_words(signer: dict[str, Any]) -> str:
    parts = [signer.get("issuer"), signer.get("common_name")]
    parts = [p for p in parts if p]
    if not parts:
        return "an unnamed signer"
    if len(parts) == 2 and parts[0] != parts[1]:
        return f"{parts[0]} ({parts[1]})"
    return parts[0]


def _evidence_for(label: str, claim: str, reasons: list[str], desc: dict[str, Any], walk: dict[str, Any],
                  manifests_info: dict[str, dict[str, Any]]) -> Evidence:
    chain = walk["chain"] if walk["role"] != "unlinked" else [label]
    infos = [manifests_info[x] for x in chain if x in manifests_info]
    integrity_failures = sorted({c for i in infos for c in i["integrity"]["failures"]})
    trusts = [i["trust"] for i in infos] or [UNTRUSTED]
    weakest = min(trusts, key=lambda t: _TRUST_RANK[t])
    caveats: list[str] = []
    if integrity_failures:
        strength = "weak"
        caveats.append("integrity check failed (" + ", ".join(integrity_failures[:6]) + "): the content or its "
                       "manifest changed after signing, so the claim cannot be confirmed")
    elif weakest in (TRUSTED, TRUSTED_INTERIM):
        strength = "proof"
    else:
        strength = "strong"
    for x, info in zip(chain, infos):
        who = _signer_words(info["signer"])
        whose = "the claiming manifest's" if x == label else "an enclosing manifest's"
        if info["trust"] == TRUSTED_INTERIM:
            caveats.append(f"{who}: {INTERIM_CAVEAT}")
        elif info["trust"] == UNTRUSTED:
            caveats.append(f"{whose} signer {who} is not on a configured trust list: the signature is intact "
                           "but anyone can sign such a claim")
        elif info["trust"] == EXPIRED:
            caveats.append(f"{whose} signer {who} used a certificate that had expired (or was not yet valid) "
                           "when checked")
    if walk["role"] == "unlinked":
        strength = "weak"
        caveats.append("this manifest is in the file's manifest store but not linked to the active manifest")
    if claim in ("ai_generated", "ai_edited") and _is_ambiguous_ai(reasons):
        strength = "weak"
        caveats.append("IPTC 'compositeSynthetic' says an element is synthetic, not that it was made by a "
                       "trained AI model (it may be a non-learned algorithm or a 3D render)")
    caveats = list(dict.fromkeys(caveats))

    signer = manifests_info[label]["signer"] if label in manifests_info else desc["signer"]
    what = _CLAIM_WORDS[claim]
    basis = ", ".join(SOURCE_TYPE_WORDS.get(r) or r.removeprefix("c2pa.").replace("_", " ") for r in reasons[:4])
    tools = sorted({a["software_agent"] for a in desc["actions"] if a.get("software_agent")})[:3] or \
        desc["claim_generator_info"][:1] or ([desc["claim_generator"]] if desc["claim_generator"] else [])
    where = "The file's Content Credentials (C2PA) state that the content"
    if walk["role"] in ("parent", "component"):
        titles = " → ".join(p["title"] or "untitled" for p in walk["path"])
        rel = "is derived from" if walk["role"] == "parent" else "includes"
        where = f"The content {rel} an ingredient ({titles}) whose Content Credentials (C2PA) state that it"
    elif walk["role"] == "unlinked":
        where = "An unlinked manifest in the file's Content Credentials (C2PA) states that content"
    summary = f"{where} {what} ({basis})"
    if tools:
        summary += f", using {', '.join(tools)}"
    summary += f"; signed by {_signer_words(signer)}, {_TRUST_WORDS[manifests_info[label]['trust']]}"
    summary += "; integrity check failed." if integrity_failures else "; hashes and signature check out."
    details = {
        "manifest": desc["label"],
        "role": walk["role"],
        "ingredient_path": walk["path"],
        "basis": reasons,
        "claim_generator": desc["claim_generator"],
        "claim_generator_info": desc["claim_generator_info"],
        "software_agents": sorted({a["software_agent"] for a in desc["actions"] if a.get("software_agent")}),
        "actions": [a["action"] for a in desc["actions"]],
        "signer": signer,
        "trust": manifests_info[label]["trust"],
        "chain_trust": weakest,
        "integrity": "failed" if integrity_failures else "ok",
        "integrity_failures": integrity_failures,
        # the manifest declares the asset's own digital source type (not an edit action on it)
        "declared_origin": any(r in SOURCE_TYPE_CLAIMS for r in reasons),
    }
    return Evidence(source=SOURCE, claim=claim, strength=strength, summary=summary, details=details,
                    caveats=tuple(caveats))


def _signed_words(desc: dict[str, Any], info: dict[str, Any]) -> str:
    when = desc["signer"].get("time")
    return (f"signed by {_signer_words(info['signer'])}{' on ' + str(when) if when else ''}, "
            f"{_TRUST_WORDS[info['trust']]}")


def _base_details(desc: dict[str, Any], info: dict[str, Any]) -> dict[str, Any]:
    return {
        "manifest": desc["label"], "role": "active", "title": desc["title"],
        "claim_generator": desc["claim_generator"], "claim_generator_info": desc["claim_generator_info"],
        "actions": [a["action"] for a in desc["actions"]], "signer": info["signer"], "trust": info["trust"],
        "integrity": info["integrity"]["status"], "integrity_failures": info["integrity"]["failures"],
    }


def _trust_caveats(info: dict[str, Any]) -> list[str]:
    who = _signer_words(info["signer"])
    if info["trust"] == EXPIRED:
        return [f"the signer {who} used a certificate that had expired (or was not yet valid) when checked, and "
                "no trusted time-stamp shows it was valid when the manifest was signed"]
    if info["trust"] == UNTRUSTED:
        return [f"the signer {who} is not on a configured trust list: anyone can make such a signature"]
    if info["trust"] == TRUSTED_INTERIM:
        return [f"{who}: {INTERIM_CAVEAT}"]
    return []


def _altered_evidence(desc: dict[str, Any], info: dict[str, Any], status: _Status) -> Evidence:
    """The active manifest failed its integrity check: what failed, who signed, when."""
    failures = info["integrity"]["failures"]
    content_changed = any(f in CONTENT_HASH_FAILURES for f in failures)
    explained = sorted({f"{c}: {e}" if e else c for kind, c, e in status.codes()
                        if kind == "failure" and c in failures})[:12]
    listed = ", ".join(failures[:6])
    if content_changed:
        what = f"the file was changed after it was signed ({listed})"
        caveats = ["the hashes show that the file's bytes differ from what was signed, not what changed: a "
                   "re-encoding or a metadata edit breaks them as surely as a visible edit",
                   "the manifest's claims describe the file as it was when signed, not as it is now"]
    else:
        what = (f"they fail validation ({listed}): the manifest is malformed, or it or its signature was "
                "altered after signing")
        caveats = ["the manifest's claims cannot be relied on: its signature or assertions do not check out"]
    caveats += _trust_caveats(info)
    details = {**_base_details(desc, info), "content_changed": content_changed, "failures_explained": explained}
    return Evidence(
        source=SOURCE, claim="altered_after_signing", strength="strong" if content_changed else "weak",
        summary=f"Content Credentials (C2PA) are present, but {what}; {_signed_words(desc, info)}.",
        details=details, caveats=tuple(caveats),
    )


def _credentials_evidence(desc: dict[str, Any], info: dict[str, Any]) -> Evidence:
    """An intact manifest that claims nothing about AI, a camera or edits (e.g. an expired signer)."""
    tools = desc["claim_generator_info"][:1] or ([desc["claim_generator"]] if desc["claim_generator"] else [])
    made = f", written by {tools[0]}" if tools else ""
    strength = "proof" if info["trust"] in (TRUSTED, TRUSTED_INTERIM) else "strong"
    return Evidence(
        source=SOURCE, claim="content_credentials", strength=strength,
        summary=(f"The file carries Content Credentials (C2PA){made} that make no claim about AI, a camera "
                 f"capture or edits; {_signed_words(desc, info)}; hashes and signature check out."),
        details=_base_details(desc, info), caveats=tuple(_trust_caveats(info)),
    )


def _remote_url(message: str) -> str | None:
    m = re.search(r"(https?://\S+)", message)
    return _short(m.group(1).rstrip(".,;)'\""), 500) if m else None


def _is_remote_error(exc: BaseException) -> bool:
    msg = str(exc)
    return ("remote" in type(exc).__name__.lower() or msg.startswith("Remote:") or "RemoteManifest" in msg
            or "remote manifest" in msg.lower())


def _remote_evidence(url: str | None) -> Evidence:
    where = f" at {url}" if url else ""
    return Evidence(
        source=SOURCE, claim="content_credentials", strength="weak",
        summary=(f"The file refers to Content Credentials (C2PA) kept online{where}: a remote manifest, not "
                 "fetched (offline analysis), so what they claim is unknown."),
        details={"remote_manifest_url": url, "fetched": False, "role": "active"},
        caveats=("a remote manifest is not checked offline: fetch it from the URL with a C2PA tool to see who "
                 "signed it and what it claims",),
    )


_ROLE_KEEP = {
    "active": {"ai_generated": "ai_generated", "ai_edited": "ai_edited", "edited": "edited",
               "camera_captured": "camera_captured", "computer_generated": "computer_generated"},
    "parent": {"ai_generated": "ai_generated", "ai_edited": "ai_edited", "edited": "edited",
               "camera_captured": "camera_captured", "computer_generated": "computer_generated"},
    # A component is part of the content: AI in a part makes the whole AI-edited.
    "component": {"ai_generated": "ai_edited", "ai_edited": "ai_edited"},
    "unlinked": {"ai_generated": "ai_generated", "ai_edited": "ai_edited"},
}


def analyze_c2pa(data: bytes, mime: str, *, trust: TrustLists | None = None) -> Findings:
    """C2PA evidence for one file's bytes (``mime``: the sniffed type; a hint, c2pa checks it).

    Files without Content Credentials give an empty :class:`Findings`; a malformed or truncated
    manifest gives a note; this function does not raise on bad input.
    """
    found = Findings()
    if not data or (b"c2pa" not in data and b"provenance" not in data):
        return found  # no JUMBF manifest store ("c2pa" label) and no remote-manifest XMP reference
    if len(data) > MAX_C2PA_INPUT_BYTES:
        found.notes.append(f"c2pa: skipped, file over {MAX_C2PA_INPUT_BYTES} bytes")
        return found
    trust = trust or TrustLists.default()
    try:
        import c2pa  # noqa: F401
    except ImportError:  # pragma: no cover - a hard dependency
        found.notes.append("c2pa: c2pa-python is not installed")
        return found
    try:
        store = _read_store(data, mime, _settings(trust, interim=False))
    except _ReadProblem as exc:
        found.notes.append(str(exc))
        return found
    except OSError as exc:
        found.notes.append(f"c2pa: trust list unreadable: {_short(exc, 200)}")
        return found
    except Exception as exc:  # c2pa-rs parser errors, JSON errors: never a crash
        if _is_remote_error(exc):
            url = _remote_url(str(exc))
            found.notes.append(_error_note(exc, mime))
            found.evidence.append(_remote_evidence(url))
            found.raw["c2pa"] = {"remote_manifest_url": url, "fetched": False}
        elif b"c2pa" in data:
            found.notes.append(_error_note(exc, mime))
        return found
    if store is None:
        return found

    def interim_store() -> dict[str, Any] | None:
        return _read_store(data, mime, _settings(trust, interim=True))

    try:
        found.extend(summarize_store(store, interim_store=interim_store if trust.has_interim else None))
    except Exception as exc:  # a store shaped in a way we did not foresee
        found.notes.append(f"c2pa: the manifest store could not be interpreted: {_short(exc, 200)}")
    return found


def summarize_store(
    store: dict[str, Any],
    *,
    interim_store: Callable[[], dict[str, Any] | None] | None = None,
) -> Findings:
    """Evidence from a manifest store as c2pa's Reader reports it (validated with the official list).

    ``interim_store`` re-reads the same file validated with the interim list added; it is called
    only when a signer on the official pass is not trusted.
    """
    found = Findings()
    manifests = store.get("manifests")
    active = store.get("active_manifest")
    if not isinstance(manifests, dict) or not isinstance(active, str) or not isinstance(manifests.get(active), dict):
        found.notes.append("c2pa: manifest store without a readable active manifest")
        found.raw["c2pa"] = {"validation_state": _short(store.get("validation_state", "")), "manifests": []}
        return found
    if len(manifests) > MAX_MANIFESTS:
        found.notes.append(f"c2pa: {len(manifests)} manifests in the store, only {MAX_MANIFESTS} examined")
    walk = _walk(manifests, active)
    statuses = _statuses(store, manifests, active)
    first = {lab: _trust_of(statuses[lab]) for lab in walk if lab in statuses}

    # Second pass, only for signers the official list does not trust: the legacy interim list.
    interim_trusted: set[str] = set()
    interim_codes: dict[str, list[str]] | None = None
    validation_state = store.get("validation_state")
    if interim_store is not None and any(t != TRUSTED for t, _ in first.values()):
        try:
            store2 = interim_store()
        except Exception as exc:
            found.notes.append(f"c2pa: validation against the interim trust list failed: {_short(exc, 200)}")
            store2 = None
        if isinstance(store2, dict) and isinstance(store2.get("manifests"), dict):
            statuses2 = _statuses(store2, store2["manifests"], active)
            for lab, (t, _) in first.items():
                if t == UNTRUSTED and lab in statuses2 and _trust_of(statuses2[lab])[0] == TRUSTED:
                    interim_trusted.add(lab)
            if active in interim_trusted:
                validation_state = store2.get("validation_state", validation_state)
            if active in statuses2:
                interim_codes = {k: sorted({c for kind, c, _ in statuses2[active].current if kind == k})
                                 for k in ("success", "failure", "informational")}

    info: dict[str, dict[str, Any]] = {}
    descs: dict[str, dict[str, Any]] = {}
    for lab in walk:
        m = manifests.get(lab)
        if not isinstance(m, dict):
            continue
        descs[lab] = d = _describe(lab, m)
        t, list_name = first.get(lab, (UNTRUSTED, None))
        if lab in interim_trusted:
            t, list_name = TRUSTED_INTERIM, LIST_INTERIM
        st = statuses.get(lab, _Status())
        failures = st.integrity_failures()
        info[lab] = {
            "signer": d["signer"],
            "trust": t,
            "trust_list": list_name if t in (TRUSTED, TRUSTED_INTERIM) else None,
            "integrity": {"status": "failed" if failures else "ok", "failures": failures},
        }

    for lab, w in walk.items():
        if lab not in descs:
            continue
        keep = _ROLE_KEEP[w["role"]]
        for claim, reasons in _claims_of(descs[lab]).items():
            if claim in keep:
                found.evidence.append(_evidence_for(lab, keep[claim], reasons, descs[lab], w, info))
    # Broken or claim-less credentials are evidence too: never leave them out of the verdict.
    if info[active]["integrity"]["failures"]:
        found.evidence.append(_altered_evidence(descs[active], info[active], statuses.get(active, _Status())))
    elif not found.evidence:
        found.evidence.append(_credentials_evidence(descs[active], info[active]))
    found.evidence.sort(key=lambda e: (e.details["role"] != "active", e.claim))

    act_status = statuses.get(active, _Status())
    found.raw["c2pa"] = {
        "active_manifest": _short(active, 200),
        "validation_state": _short(validation_state or ""),
        "integrity": info[active]["integrity"],
        "signer": info[active]["signer"],
        "trust": info[active]["trust"],
        "trust_list": info[active]["trust_list"],
        "status_codes": {k: sorted({c for kind, c, _ in act_status.current if kind == k})
                         for k in ("success", "failure", "informational")},
        "status_codes_interim_pass": interim_codes,
        "timestamp": sorted({f"{c}: {e}" for _, c, e in act_status.current if c.startswith("timeStamp.")}),
        "manifests": [
            {**{k: descs[lab][k] for k in ("label", "title", "claim_generator", "claim_generator_info",
                                              "asset_source_types", "actions", "ingredients")},
             "role": walk[lab]["role"], "ingredient_path": walk[lab]["path"],
             "source_types": sorted(set(descs[lab]["asset_source_types"]) |
                                    {a["digital_source_type"] for a in descs[lab]["actions"]
                                     if a.get("digital_source_type")}),
             **info[lab]}
            for lab in walk if lab in descs
        ],
    }
    return found
