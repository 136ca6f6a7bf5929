from __future__ import annotations

from fastapi import APIRouter, Depends, File, Request, UploadFile

from consentry.errors import ConsentryError, UnsupportedMedia
from consentry.evidence.assess import assess_content
from consentry.hashing import hash_content
from consentry.media.sniff import PHOTO, VIDEO
from consentry.web.auth import HASHERS, Principal, require
from consentry.web.deps import rate_limit, read_upload, state
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["analyze"])


@router.post("/analyze", summary="Assess an uploaded file for AI generation or editing (as `consentry analyze`)",
             description="Unsupported or unreadable media answer 422 problem+json (as POST /v1/match and "
                         "/v1/hash). A picture that is damaged but still carries evidence (e.g. a C2PA "
                         "manifest) is assessed, with the decoding problem in `notes`.")
def analyze_upload(request: Request, file: UploadFile = File(...), p: Principal = Depends(require(*HASHERS))) -> dict:
    st = state(request)
    rate_limit(st, p.key_id, "analyze requests")
    content = read_upload(file, st.settings)
    if content.content_type not in (PHOTO, VIDEO):
        raise UnsupportedMedia("unrecognised or unsupported file format")
    name = file.filename or "-"
    failure: ConsentryError | None = None
    try:
        hashed = hash_content(content, name, strict=True)
    except ConsentryError as exc:  # analysed as far as it goes: evidence may survive a decoding error
        failure, hashed = exc, hash_content(content, name)
    assessment = assess_content(content, name, hashed=hashed)
    if assessment.error:  # nothing could be read: the same 422 the other media routes give
        if failure is not None:
            raise failure
        raise Problem(422, "bad-media", assessment.error)
    return assessment.to_dict()
