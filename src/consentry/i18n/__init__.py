"""Message catalogs for the public pages (``/``, ``/submit``, ``/case``), shared by the templates
and the pages' JavaScript.

One YAML file per language in ``messages/`` maps a message id (``submit.title``) to its text. A
text may hold ``{name}`` placeholders; a *plural* message is a mapping from CLDR plural category
(``zero one two few many other``) to text and is chosen in the browser with ``Intl.PluralRules``.
Ids starting with ``js.`` are the ones the scripts need: a page embeds them as JSON
(``<script type="application/json" id="messages">``), so the scripts carry no text of their own.

English (``en``) is the source catalog; every other catalog must translate every id
(``tests/test_victim_i18n.py`` checks it). Adding a language: copy ``messages/en.yaml``, translate
it for a reader in distress (calm, short sentences, not word for word), and add the language to
:data:`LANGUAGES`.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

MESSAGES_DIR = Path(__file__).resolve().parent / "messages"
DEFAULT = "en"


@dataclass(frozen=True)
class Language:
    code: str
    name: str  # in the language itself, as the switcher shows it
    dir: str = "ltr"
    plural_forms: tuple[str, ...] = ("one", "other")  # the CLDR categories a plural message needs


#: The languages with a complete catalog, in the switcher's order.
LANGUAGES: dict[str, Language] = {lang.code: lang for lang in (
    Language("en", "English"),
    Language("es", "Español", plural_forms=("one", "other")),
    Language("ko", "한국어", plural_forms=("other",)),
    Language("ar", "العربية", "rtl", ("zero", "one", "two", "few", "many", "other")),
)}

PLURAL_CATEGORIES = ("zero", "one", "two", "few", "many", "other")
_FIELDS = string.Formatter()


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, Any]:
    """The messages of ``lang`` (raises ``KeyError`` for a language without a catalog)."""
    if lang not in LANGUAGES:
        raise KeyError(lang)
    data = yaml.safe_load((MESSAGES_DIR / f"{lang}.yaml").read_text(encoding="utf-8")) or {}
    if not isinstance(data, dict):
        raise ValueError(f"messages/{lang}.yaml must be a mapping of message ids to texts")
    for key, value in data.items():
        ok = isinstance(value, str) or (isinstance(value, dict) and value and set(value) <= set(PLURAL_CATEGORIES)
                                        and all(isinstance(v, str) for v in value.values()))
        if not ok:  # YAML turns unquoted yes/no/on/off into booleans: refuse, do not show "True"
            raise ValueError(f"messages/{lang}.yaml: {key!r} must be a text or a mapping of plural forms")
    return data


def placeholders(text: str) -> set[str]:
    """The ``{name}`` fields of a message."""
    return {name for _, name, _, _ in _FIELDS.parse(text) if name}


_LANG_TAG = re.compile(r"^[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*$")


def parse_accept_language(header: str | None) -> list[str]:
    """Primary language subtags of an ``Accept-Language`` header, best first (q=0 dropped)."""
    ranked: list[tuple[float, int, str]] = []
    for n, part in enumerate((header or "")[:1000].split(",")[:30]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not _LANG_TAG.match(tag):
            continue
        q = 1.0
        m = re.search(r"q\s*=\s*([0-9.]+)", params)
        if m:
            try:
                q = float(m.group(1))
            except ValueError:
                continue
        if q > 0:
            ranked.append((-q, n, tag.split("-")[0].lower()))
    return [tag for _, _, tag in sorted(ranked)]


def negotiate(accept_language: str | None, requested: str | None = None) -> str:
    """The page language: ``?lang=`` when it names a catalog, else the best ``Accept-Language``
    match, else English."""
    if requested:
        code = requested.strip().split("-")[0].lower()
        if code in LANGUAGES:
            return code
    for code in parse_accept_language(accept_language):
        if code in LANGUAGES:
            return code
    return DEFAULT


@dataclass
class Translator:
    """``_("id", name=value)`` for templates; ``js()`` for the scripts' messages."""

    lang: str
    chosen: bool = False  # ?lang= was given: internal links keep it (no cookies on these pages)
    _messages: dict[str, Any] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._messages = catalog(self.lang)

    @property
    def language(self) -> Language:
        return LANGUAGES[self.lang]

    @property
    def dir(self) -> str:
        return self.language.dir

    def _raw(self, key: str) -> Any:
        value = self._messages.get(key)
        if value is None:
            value = catalog(DEFAULT).get(key)
        if value is None:
            raise KeyError(f"no message {key!r}")
        return value

    def __call__(self, key: str, **values: Any) -> str:
        value = self._raw(key)
        if isinstance(value, dict):
            value = value.get("other") or next(iter(value.values()))
        return value.format(**values) if values else value

    def js(self, prefix: str = "js.") -> dict[str, Any]:
        """Every message the scripts use (ids starting with ``prefix``), English filling gaps."""
        out = {k: v for k, v in catalog(DEFAULT).items() if k.startswith(prefix)}
        out.update({k: v for k, v in self._messages.items() if k.startswith(prefix)})
        return out

    def link(self, path: str) -> str:
        """An internal link that keeps an explicitly chosen language."""
        if not self.chosen:
            return path
        return f"{path}{'&' if '?' in path else '?'}lang={self.lang}"

    def switcher(self, path: str) -> list[dict[str, Any]]:
        """The language switcher's entries for the page at ``path``."""
        return [{"code": lang.code, "name": lang.name, "href": f"{path}?lang={lang.code}",
                 "current": lang.code == self.lang} for lang in LANGUAGES.values()]


def translator_for(accept_language: str | None, requested: str | None) -> Translator:
    lang = negotiate(accept_language, requested)
    chosen = bool(requested) and requested.strip().split("-")[0].lower() == lang
    return Translator(lang, chosen=chosen)
