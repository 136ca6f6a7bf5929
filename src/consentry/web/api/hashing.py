from __future__ import annotations

from fastapi import APIRouter, Depends, File, Request, UploadFile

from consentry.hashing import hash_content
from consentry.web.api.quality import disabled_warnings, merge, pdq_warnings, vpdq_warnings
from consentry.web.auth import HASHERS, Principal, require
from consentry.web.deps import rate_limit, read_upload, state

router = APIRouter(prefix="/v1", tags=["hash"])


@router.post("/hash", summary="Hash an uploaded file (as `consentry hash`)",
             description="Unsupported, undecodable or over-limit media answer 422 problem+json (as "
                         "POST /v1/match and /v1/analyze). `warnings` lists weak hashes (PDQ quality "
                         "below 50: not used to match).")
def hash_upload(request: Request, file: UploadFile = File(...), p: Principal = Depends(require(*HASHERS))) -> dict:
    st = state(request)
    rate_limit(st, p.key_id, "hash requests")
    content = read_upload(file, st.settings)
    enabled = st.matcher.enabled_types  # signal types switched off on this instance are not computed
    result = hash_content(content, file.filename or "-", strict=True, enabled=enabled)
    body = result.to_dict()
    body["warnings"] = merge(pdq_warnings(result.pdq_quality, "hashed") if result.pdq else [],
                             vpdq_warnings(result.vpdq, "hashed") if result.vpdq is not None else [],
                             disabled_warnings(enabled, content.content_type))
    return body
