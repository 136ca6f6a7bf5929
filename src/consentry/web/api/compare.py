"""``POST /v1/compare``: derivation proof (as ``consentry compare``), for the same roles and under the
same per-key rate limit as ``POST /v1/analyze``."""

from __future__ import annotations

from fastapi import APIRouter, Depends, File, Request, UploadFile

from consentry.errors import UnsupportedMedia
from consentry.evidence.derivation import MIXED_MEDIA, compare_contents
from consentry.media.sniff import PHOTO, VIDEO
from consentry.web.auth import HASHERS, Principal, require
from consentry.web.deps import rate_limit, read_upload, state
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["analyze"])


@router.post("/compare", summary="Was SUSPECT made from ORIGINAL? Share derived and differing regions "
                                 "(as `consentry compare`)",
             description="Multipart `original` and `suspect` (two pictures, or two videos). Answers `derived`, "
                         "`share_derived` (of the suspect's area), `regions` (boxes in the original's "
                         "pixels), `transform` (scale, rotation, mirrored), `inliers`, `aligned_pdq`, a "
                         "plain `summary`, `caveats` and `limitations`. Unrelated pictures answer 200 "
                         "with `derived` false; unsupported or unreadable media answer 422 "
                         "problem+json. Two videos answer `kind` \"video\": `share_aligned` (of the "
                         "suspect's sampled frames), `pairs` (suspect t -> original t, PDQ distance, "
                         "share differing), `stable_regions` (regions that differ consistently across "
                         "frames, in the original's pixels), `offset_seconds`. A picture and a video "
                         "together answer 422. Nothing is stored.")
def compare_upload(request: Request, original: UploadFile = File(...), suspect: UploadFile = File(...),
                   p: Principal = Depends(require(*HASHERS))) -> dict:
    st = state(request)
    rate_limit(st, p.key_id, "compare requests")
    contents = []
    for which, upload in (("original", original), ("suspect", suspect)):
        content = read_upload(upload, st.settings)
        if content.content_type not in (PHOTO, VIDEO):
            raise UnsupportedMedia(f"the {which} is not a supported picture or video")
        contents.append(content)
    if contents[0].content_type != contents[1].content_type:
        raise Problem(422, "bad-media", MIXED_MEDIA)
    result = compare_contents(contents[0], contents[1], original_name=original.filename or "original",
                              suspect_name=suspect.filename or "suspect")
    if result.error:
        raise Problem(422, "bad-media", result.error)
    return result.to_dict()
