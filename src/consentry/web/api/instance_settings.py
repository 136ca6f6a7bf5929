"""Instance settings changed while running (issue 22): the signal types switched on."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from consentry.instance_settings import SettingsError, set_signal_types, signal_types_view
from consentry.web.auth import READ_BANKS, Principal, require
from consentry.web.deps import state
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["settings"])


class SignalTypesUpdate(BaseModel):
    enabled: list[str] = Field(description="The signal types to compute and match, e.g. [\"md5\", \"sha256\", \"pdq\"]")


def _view(request: Request) -> dict:
    st = state(request)
    return signal_types_view(st.banks.db, st.settings.signal_types)


@router.get("/settings/signal-types", summary="The signal types this instance computes and matches")
def get_signal_types(request: Request, _p=Depends(require(*READ_BANKS))) -> dict:
    return _view(request)


@router.put("/settings/signal-types", summary="Switch signal types on and off (every worker follows)",
            description="Admin only. Disabled types are not computed by POST /v1/hash and not matched; "
                        "queries carrying them get a `signal-type-disabled` warning.")
def put_signal_types(request: Request, body: SignalTypesUpdate, p: Principal = Depends(require())) -> dict:
    st = state(request)
    try:
        set_signal_types(st.banks.db, body.enabled, actor=f"key:{p.key_id}")
    except SettingsError as exc:
        raise Problem(422, "bad-setting", str(exc)) from None
    if st.matcher.loaded:
        st.matcher.refresh()  # this worker at once; the others within index_refresh_seconds
    return _view(request)
