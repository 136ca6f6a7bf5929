"""Prompt triage: the operator's term list, and prompts withheld from reports unless asked.

The term list is a plain text file, one term or phrase per line (``#`` starts a comment);
matching is case-insensitive on whole words (a phrase matches its words in sequence). It is
empty unless the operator supplies one: Consentry ships no list of its own.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from consentry.errors import ConsentryError

MAX_TERMS_BYTES = 1024 * 1024
MAX_TERMS = 10_000
_WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)?", re.UNICODE)


def words(text: str | None) -> list[str]:
    return _WORD.findall((text or "").lower())


def load_terms(path: str | Path | None) -> list[str]:
    """Normalised terms of an operator's term list (``[]`` without one)."""
    if path is None:
        return []
    p = Path(path)
    try:
        if p.stat().st_size > MAX_TERMS_BYTES:
            raise ConsentryError(f"the term list {p} is over {MAX_TERMS_BYTES} bytes")
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise ConsentryError(f"cannot read the term list {p}: {exc.strerror or exc}") from exc
    terms: list[str] = []
    for line in text.splitlines():
        term = " ".join(words(line.split("#", 1)[0]))
        if term and term not in terms:
            terms.append(term)
        if len(terms) >= MAX_TERMS:
            break
    return terms


def flag(text: str | None, terms: list[str]) -> list[str]:
    """The terms of the list that occur in ``text`` (whole words, phrases in sequence)."""
    if not text or not terms:
        return []
    padded = f" {' '.join(words(text))} "
    return [t for t in terms if f" {t} " in padded]


def digest(text: str | None) -> str | None:
    """A short fingerprint of a prompt: identical prompts can be matched without reading them."""
    if not text:
        return None
    return hashlib.sha256(text.strip().encode("utf-8")).hexdigest()[:12]


def shown(text: str | None, show: bool) -> str | None:
    """A prompt as a report shows it: in clear only when the examiner asked (``--show-prompts``)."""
    if not text:
        return None
    if show:
        return text
    return f"[prompt withheld: {len(words(text))} words, fingerprint {digest(text)}]"


def similarity(a: str | None, b: str | None) -> float:
    """Token overlap of two prompts (Jaccard index of their word sets), 0..1."""
    wa, wb = set(words(a)), set(words(b))
    if not wa or not wb:
        return 0.0
    return len(wa & wb) / len(wa | wb)
