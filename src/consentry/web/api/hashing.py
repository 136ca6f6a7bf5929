from __future__ import annotations

from fastapi import APIRouter, Depends, File, Request, UploadFile

from consentry.hashing import hash_content
from consentry.web.auth import HASHERS, require
from consentry.web.deps import read_upload, state

router = APIRouter(prefix="/v1", tags=["hash"])


@router.post("/hash", summary="Hash an uploaded file (as `consentry hash`)")
def hash_upload(request: Request, file: UploadFile = File(...), _p=Depends(require(*HASHERS))) -> dict:
    st = state(request)
    content = read_upload(file, st.settings)
    result = hash_content(content, file.filename or "-")
    return result.to_dict()
