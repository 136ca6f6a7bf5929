from __future__ import annotations

from fastapi import APIRouter, Depends, File, Request, UploadFile

from consentry.hashing import hash_content
from consentry.media.content import Content
from consentry.web.api.quality import disabled_warnings, hash_warnings, merge
from consentry.web.auth import HASHERS, Principal, require
from consentry.web.deps import AppState, rate_limit, read_upload, state

router = APIRouter(prefix="/v1", tags=["hash"])


@router.post("/hash", summary="Hash an uploaded file (as `consentry hash`)",
             description="Unsupported, undecodable or over-limit media answer 422 problem+json (as "
                         "POST /v1/match and /v1/analyze). `warnings` lists weak hashes (PDQ quality "
                         "below 50: not used to match).")
def hash_upload(request: Request, file: UploadFile = File(...), p: Principal = Depends(require(*HASHERS))) -> dict:
    st = state(request)
    rate_limit(st, p.key_id, "hash requests")
    return hash_response(st, read_upload(file, st.settings), file.filename or "-")


def hash_response(st: AppState, content: Content, name: str) -> dict:
    """The body of POST /v1/hash (and /v1/hash/url): the hashes and their warnings."""
    enabled = st.matcher.enabled_types  # signal types switched off on this instance are not computed
    result = hash_content(content, name, strict=True, enabled=enabled)
    body = result.to_dict()
    body["warnings"] = merge(hash_warnings(result.pdq, result.pdq_quality, result.vpdq, "hashed"),
                             disabled_warnings(enabled, content.content_type))
    return body
