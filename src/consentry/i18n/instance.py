"""What the public pages say about this instance: who runs it, its privacy notice, the partner
platforms that receive the hashes, and the support organisations shown to visitors.

Two operator-editable YAML files, both optional:

* ``$CONSENTRY_HOME/operator.yaml`` (or ``CONSENTRY_OPERATOR_FILE``): the operator's name, site and
  contact, an ``about`` and a ``privacy`` text, and ``partners`` (the platforms that receive the
  hashes). Texts are either one string or a mapping by language (``en``, ``es``, ``ko`` ...).
  See ``operator.example.yaml`` next to this module.
* ``$CONSENTRY_HOME/support-resources.yaml`` (or ``CONSENTRY_SUPPORT_FILE``): support
  organisations by country, replacing the packaged ``support-resources.yaml``, whose entries
  were each checked against the public source named beside them.

Files are read again when they change. A file that cannot be read or has the wrong shape is
logged and ignored (the pages then say the operator has not published its details, or show the
packaged resources): the victim pages must keep working for the people who need them.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from consentry.i18n import DEFAULT

log = logging.getLogger(__name__)

PACKAGED_SUPPORT = Path(__file__).resolve().parent / "support-resources.yaml"
MAX_FILE = 1024 * 1024
_cache: dict[Path, tuple[float, int, Any]] = {}


class InstanceFileError(ValueError):
    pass


def _read_yaml(path: Path) -> Any:
    """The parsed file, cached by modification time; raises :class:`InstanceFileError`."""
    try:
        st = path.stat()
    except OSError as exc:
        raise InstanceFileError(f"{path}: {exc.strerror or exc}") from None
    hit = _cache.get(path)
    if hit and hit[0] == st.st_mtime and hit[1] == st.st_size:
        return hit[2]
    if st.st_size > MAX_FILE:
        raise InstanceFileError(f"{path}: larger than {MAX_FILE} bytes")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InstanceFileError(f"{path}: not readable YAML ({str(exc)[:200]})") from None
    _cache[path] = (st.st_mtime, st.st_size, data)
    return data


def localized(value: Any, lang: str) -> str:
    """A text in ``lang`` from a string or a ``{lang: text}`` mapping (English, then any, as fallback)."""
    if value is None:
        return ""
    if isinstance(value, dict):
        for key in (lang, DEFAULT):
            if isinstance(value.get(key), str):
                return value[key]
        return next((v for v in value.values() if isinstance(v, str)), "")
    return str(value)


def _safe_url(value: Any) -> str:
    url = str(value or "").strip()
    return url if url.startswith(("https://", "http://", "tel:", "mailto:")) else ""


# ------------------------------------------------------------------ operator
@dataclass
class Operator:
    configured: bool = False
    name: str = ""
    url: str = ""
    contact: str = ""
    about: str = ""
    privacy: str = ""
    partners: list[dict[str, str]] = field(default_factory=list)


def operator_path(home: Path) -> Path:
    return Path(os.environ.get("CONSENTRY_OPERATOR_FILE") or Path(home) / "operator.yaml")


def load_operator(home: Path, lang: str) -> Operator:
    path = operator_path(home)
    if not path.exists():
        return Operator()
    try:
        data = _read_yaml(path)
        if not isinstance(data, dict):
            raise InstanceFileError(f"{path}: expected a mapping (name:, about:, privacy:, partners:)")
        partners = data.get("partners") or []
        if not isinstance(partners, list):
            raise InstanceFileError(f"{path}: partners must be a list")
    except InstanceFileError as exc:
        log.error("operator file ignored: %s", exc)
        return Operator()
    out = []
    for p in partners[:200]:
        if isinstance(p, str):
            p = {"name": p}
        if isinstance(p, dict) and p.get("name"):
            out.append({"name": localized(p["name"], lang)[:200], "url": _safe_url(p.get("url"))})
    return Operator(True, localized(data.get("name"), lang)[:200], _safe_url(data.get("url")),
                    localized(data.get("contact"), lang)[:300], localized(data.get("about"), lang)[:4000],
                    localized(data.get("privacy"), lang)[:8000], out)


# ------------------------------------------------------------------ support resources
@dataclass
class Resource:
    name: str
    about: str = ""
    phones: list[str] = field(default_factory=list)
    url: str = ""
    hours: str = ""
    source: str = ""


@dataclass
class Country:
    code: str
    name: str
    resources: list[Resource]


def support_path(home: Path) -> Path:
    env = os.environ.get("CONSENTRY_SUPPORT_FILE")
    if env:
        return Path(env)
    local = Path(home) / "support-resources.yaml"
    return local if local.exists() else PACKAGED_SUPPORT


def _support_data(home: Path) -> dict:
    path = support_path(home)
    try:
        data = _read_yaml(path)
        if not isinstance(data, dict) or not isinstance(data.get("countries"), dict):
            raise InstanceFileError(f"{path}: expected a mapping with countries:")
        return data
    except InstanceFileError as exc:
        log.error("support resources file ignored: %s", exc)
        return _read_yaml(PACKAGED_SUPPORT) if path != PACKAGED_SUPPORT else {"countries": {}}


def support_countries(home: Path, lang: str) -> tuple[list[Country], list[str]]:
    """Every country with resources (by name in ``lang``), and the codes shown first for ``lang``."""
    data = _support_data(home)
    countries = []
    for code, c in data["countries"].items():
        if not isinstance(c, dict):
            continue
        res = []
        for r in c.get("resources") or []:
            if not isinstance(r, dict) or not r.get("name"):
                continue
            phones = r.get("phone") or []
            phones = [str(p) for p in (phones if isinstance(phones, list) else [phones])][:5]
            res.append(Resource(localized(r["name"], lang), localized(r.get("about"), lang), phones,
                                _safe_url(r.get("url")), localized(r.get("hours"), lang), _safe_url(r.get("source"))))
        if res:
            countries.append(Country(str(code).upper(), localized(c.get("name"), lang) or str(code).upper(), res))
    countries.sort(key=lambda c: c.name)
    defaults = (data.get("default_countries") or {}).get(lang) or []
    return countries, [str(c).upper() for c in defaults if isinstance(c, str)]


def support_for(home: Path, lang: str, chosen: str | None) -> dict[str, Any]:
    """What the support section shows: the chosen country (``?country=``) or the language's
    default countries, and the list of all countries to choose from."""
    countries, defaults = support_countries(home, lang)
    by_code = {c.code: c for c in countries}
    code = (chosen or "").strip().upper()[:8]
    shown = [by_code[code]] if code in by_code else [by_code[c] for c in defaults if c in by_code]
    return {"shown": shown, "countries": countries, "chosen": code if code in by_code else ""}
