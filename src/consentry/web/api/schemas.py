"""Pydantic models at the HTTP edge (request bodies and the one match-response schema)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class Provenance(BaseModel):
    source: str | None = None
    external_ids: list[str] = []
    tags: list[str] = []
    category: str | None = None
    added_by: str | None = None
    added_at: str | None = None


class MatchItem(BaseModel):
    bank: str
    bank_kind: str
    entry_id: int
    signal_type: str
    distance: int | float = Field(description="Hamming distance for PDQ, 0 for exact hashes, "
                                        "100 - best match percentage for vPDQ")
    transform: str | None = Field(None, description="Dihedral transform of the query that matched (PDQ)")
    query_variant: str | None = Field(
        None, description="Matched through a canonical hash of the upload rather than its plain hash: "
        "'trimmed' (the picture, or a video's frames, without letterbox / pillarbox borders) or 'screenshot' "
        "(the photo inside a screenshot)")
    stored_variant: str | None = Field(
        None, description="PDQ matched one of the stored picture's local variants rather than its plain hash "
        "(issue 21): 'trimmed' (without borders), 'crop90@x,y' / 'crop80@x,y' (a window of 90 % / 80 % of each "
        "side at that anchor; 0.5,0.5 = centre) or 'rot+3' (turned 3 degrees, cropped to fill)")
    provenance: Provenance
    query_match_percent: float | None = None
    compared_match_percent: float | None = None
    query_matched_seconds: list[float] | None = None
    compared_matched_seconds: list[float] | None = None
    offset_seconds: float | None = Field(
        None, description="vPDQ against a video stored with every frame: where the query starts in the stored "
        "video (stored time = speed x query time + offset), from the frames matched in order")
    speed: float | None = Field(None, description="vPDQ, with offset_seconds: the query's playback speed "
                                "relative to the stored video (1.1 = 10 % faster)")


class Verdict(BaseModel):
    decision: Literal["block", "review", "allow", "no_match"]
    block: bool
    reasons: list[str]
    rules: list[str] = Field([], description="Names of the policy rules that fired, in order (docs/rules.md)")


class ApiWarning(BaseModel):
    """Something the caller should know although the request succeeded (web/api/quality.py)."""

    code: str = Field(description="Stable code, e.g. 'low-quality-pdq' or 'no-usable-vpdq-frames'")
    message: str


class RolloutSkipped(BaseModel):
    bank: str
    entry_id: int
    signal_type: str


class MatchResponse(BaseModel):
    query: dict[str, Any]
    matches: list[MatchItem]
    warnings: list[ApiWarning] = Field([], description="E.g. a query whose PDQ quality is below 50 is "
                                       "matched by its exact hashes only")
    suppressed: list[MatchItem] = Field([], description="Matches hidden because the content is on an allow bank")
    allowed_by: list[MatchItem] = []
    rollout_skipped: list[RolloutSkipped] | None = Field(
        None, description="Matches held back by their bank's gradual rollout (match_percent below 100): not "
        "matches, listed for curator and admin keys only (null for other roles)")
    verdict: Verdict
    assessment: dict[str, Any] | None = Field(
        None, description="With POST /v1/match?analyze=true: the evidence assessment (as POST /v1/analyze)")


class BankCreate(BaseModel):
    name: str
    kind: Literal["ncii", "csam", "ai-abuse", "terror", "allow", "custom"] = "custom"
    description: str = ""
    thresholds: dict[str, int] = {}
    shared: bool = False
    match_percent: float = Field(100.0, ge=0, le=100, description="Gradual rollout: the share of lookups "
                                 "(picked per content, the same content always alike) that may match this bank")


class BankUpdate(BaseModel):
    name: str | None = None
    kind: Literal["ncii", "csam", "ai-abuse", "terror", "allow", "custom"] | None = None
    description: str | None = None
    thresholds: dict[str, int] | None = None
    shared: bool | None = None
    match_percent: float | None = Field(None, ge=0, le=100, description="Gradual rollout share (0-100)")
    disabled_until: datetime | None = Field(None, description="The bank matches nothing until this time "
                                            "(ISO 8601, in the future); null clears it")


class EntryCreate(BaseModel):
    signal_type: str
    value: str | list[str] = Field(description="Hash string; for vPDQ a list of 'hex,quality,seconds'")
    quality: int | None = Field(None, ge=0, le=100)
    source: str | None = None
    external_ids: list[str] = []
    tags: list[str] = []
    category: str | None = None
