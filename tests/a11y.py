"""Accessibility checks for the browser tests: run the vendored axe-core in a Playwright page.

    from a11y import axe_violations, describe
    bad = axe_violations(page)                 # serious + critical, all rules axe runs by default
    assert not bad, describe(bad)

axe-core (MPL-2.0, version in ``tests/vendor/axe-core/VERSION.md``) is evaluated through the
DevTools protocol, so it runs under the pages' strict Content-Security-Policy (``script-src
'self'``) without loosening it and without loading anything from another site.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

AXE = Path(__file__).resolve().parent / "vendor" / "axe-core" / "axe.min.js"

#: The WCAG 2.0-2.2 A/AA rules plus axe's best practices (landmarks, headings, region ...).
DEFAULT_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice")


@lru_cache(maxsize=1)
def _source() -> str:
    return AXE.read_text(encoding="utf-8")


def axe_results(page: Any, *, context: str | None = None, tags: Iterable[str] | None = DEFAULT_TAGS,
                disable: Iterable[str] = ()) -> dict:
    """axe's full result object for ``page`` (optionally only the elements matching ``context``)."""
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(_source() + "\n;undefined")
    options: dict[str, Any] = {"resultTypes": ["violations"]}
    if tags:
        options["runOnly"] = {"type": "tag", "values": list(tags)}
    rules = {r: {"enabled": False} for r in disable}
    if rules:
        options["rules"] = rules
    return page.evaluate("([ctx, opts]) => window.axe.run(ctx ? document.querySelector(ctx) : document, opts)",
                         [context, options])


def axe_violations(page: Any, impacts: Iterable[str] = ("serious", "critical"), **kwargs: Any) -> list[dict]:
    """The violations axe finds on ``page`` whose impact is one of ``impacts``."""
    wanted = set(impacts)
    return [v for v in axe_results(page, **kwargs)["violations"] if v.get("impact") in wanted]


def describe(violations: list[dict]) -> str:
    """A readable summary for an assertion message: rule, impact, and the first offending nodes."""
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v.get('impact')}): {v.get('help')}")
        for node in v.get("nodes", [])[:5]:
            lines.append(f"    {' '.join(map(str, node.get('target', [])))}: {node.get('failureSummary', '')[:300]}")
    return "\n".join(lines)
