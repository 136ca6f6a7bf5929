"""The vocabulary of evidence (DESIGN.md section 7), shared by every analyser.

An analyser (``c2pa``, ``metadata``, ``watermark``) looks at one content and returns
:class:`Findings`: the :class:`Evidence` items it found plus notes about what it could not read
(an oversized XMP packet, broken JSON, a truncated chunk).  :mod:`consentry.evidence.assess`
combines the findings of all analysers into an :class:`Assessment` with a verdict that never
overstates: absence of indicators is ``no_indicators_found``, never "authentic".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

#: What a piece of evidence says about how the content was made.  Not AI claims:
#: ``computer_generated`` (IPTC algorithmicMedia: a non-learned algorithm, e.g. a fractal);
#: ``altered_after_signing`` (C2PA credentials whose integrity check failed); ``content_credentials``
#: (C2PA credentials that claim nothing about AI, a camera or edits, or a remote manifest not fetched).
CLAIMS = ("ai_generated", "ai_edited", "edited", "camera_captured", "computer_generated",
          "altered_after_signing", "content_credentials")
#: How much weight it carries: ``proof`` = a valid signature under a trusted list; ``strong`` = a
#: specific unsigned marker or watermark; ``weak`` = a statistical signal or a marker whose
#: integrity could not be confirmed.
STRENGTHS = ("proof", "strong", "weak")
STRENGTH_RANK = {"proof": 3, "strong": 2, "weak": 1}
#: Verdicts of an assessment.
VERDICTS = ("ai_generated", "ai_edited", "edited_no_ai_indicated", "no_indicators_found", "inconclusive")


@dataclass(frozen=True)
class Evidence:
    """One finding about one content.

    ``source`` names the analyser and the format, e.g. ``c2pa``, ``xmp:iptc``, ``xmp:tc260``,
    ``png:a1111``, ``exif:comfyui``, ``watermark:sdxl``.  ``details`` holds the raw excerpt
    behind the claim (manifest fields, chunk names, bit counts) as JSON-ready values.
    ``caveats`` lists what limits the claim (untrusted signer, expired certificate, integrity
    failure, a watermark read below certainty).
    """

    source: str
    claim: str
    strength: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)
    caveats: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.claim not in CLAIMS:
            raise ValueError(f"unknown claim {self.claim!r}")
        if self.strength not in STRENGTHS:
            raise ValueError(f"unknown strength {self.strength!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["caveats"] = list(self.caveats)
        return d


@dataclass
class Findings:
    """What one analyser found: evidence items, plus notes on items it skipped and why."""

    evidence: list[Evidence] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Analyser-specific raw report (e.g. the C2PA validation summary), JSON-ready; shown in reports.
    raw: dict[str, Any] = field(default_factory=dict)

    def extend(self, other: "Findings") -> None:
        self.evidence.extend(other.evidence)
        self.notes.extend(other.notes)
        self.raw.update(other.raw)
