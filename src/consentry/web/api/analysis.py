from __future__ import annotations

from fastapi import APIRouter, Depends, File, Request, UploadFile

from consentry.evidence.assess import assess_content
from consentry.web.auth import HASHERS, require
from consentry.web.deps import read_upload, state

router = APIRouter(prefix="/v1", tags=["analyze"])


@router.post("/analyze", summary="Assess an uploaded file for AI generation or editing (as `consentry analyze`)")
def analyze_upload(request: Request, file: UploadFile = File(...), _p=Depends(require(*HASHERS))) -> dict:
    st = state(request)
    content = read_upload(file, st.settings)
    return assess_content(content, file.filename or "-").to_dict()
