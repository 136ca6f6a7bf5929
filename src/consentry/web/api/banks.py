from __future__ import annotations

import json
import tempfile
from typing import Any, Iterator

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import StreamingResponse

from consentry.banks.formats.records import records_from_hash
from consentry.hashing import hash_content, stored_variants
from consentry.web.api.quality import hash_warnings, pdq_warnings, vpdq_warnings
from consentry.web.api.schemas import BankCreate, BankUpdate, EntryCreate
from consentry.web.auth import CHANGES, READ_BANKS, WRITE_BANKS, Principal, require
from consentry.web.deps import DbId, MAX_DB_INT, read_upload, state
from consentry.web.problems import Problem

router = APIRouter(prefix="/v1", tags=["banks"])
FORMATS = ("te", "stopncii", "ncmec", "vics", "csv", "consentry")
_MEDIA = {"te": "text/plain", "csv": "text/csv", "stopncii": "application/json",
          "vics": "application/json", "ncmec": "application/xml", "consentry": "application/x-ndjson"}


def _written(request: Request) -> None:
    """A write through this worker is visible to this worker's next query at once (other
    workers pick it up from the change log within ``index_refresh_seconds``)."""
    m = state(request).matcher
    if m.loaded:
        m.refresh()


def _who(p: Principal) -> str:
    return f"key:{p.key_id}" + (f" ({p.key.name})" if p.key.name else "")


@router.get("/banks", summary="List banks")
def list_banks(request: Request, _p=Depends(require(*READ_BANKS))) -> dict:
    return {"banks": [b.to_dict() for b in state(request).banks.list_banks()]}


@router.post("/banks", status_code=201, summary="Create a bank")
def create_bank(request: Request, body: BankCreate, p: Principal = Depends(require(*WRITE_BANKS))) -> dict:
    b = state(request).banks.create_bank(body.name, body.kind, body.description, body.thresholds,
                                         shared=body.shared, actor=_who(p), match_percent=body.match_percent)
    _written(request)
    return b.to_dict()


@router.get("/banks/{name}", summary="Get a bank")
def get_bank(request: Request, name: str, _p=Depends(require(*READ_BANKS))) -> dict:
    return state(request).banks.get_bank(name).to_dict()


@router.patch("/banks/{name}", summary="Update a bank")
def update_bank(request: Request, name: str, body: BankUpdate, p: Principal = Depends(require(*WRITE_BANKS))) -> dict:
    timed = {"disabled_until": body.disabled_until} if "disabled_until" in body.model_fields_set else {}
    b = state(request).banks.update_bank(name, actor=_who(p), description=body.description, thresholds=body.thresholds,
                                         kind=body.kind, shared=body.shared, new_name=body.name,
                                         match_percent=body.match_percent, **timed)
    _written(request)
    return b.to_dict()


@router.delete("/banks/{name}", summary="Delete a bank and its entries")
def delete_bank(request: Request, name: str, p: Principal = Depends(require(*WRITE_BANKS))) -> dict:
    n = state(request).banks.delete_bank(name, actor=_who(p))
    _written(request)
    return {"deleted": name, "entries": n}


@router.get("/banks/{name}/entries", summary="List entries (cursor pagination)")
def list_entries(
    request: Request, name: str,
    status: str | None = Query(None, pattern="^(active|disabled|withdrawn)$"),
    signal_type: str | None = None,
    cursor: int = Query(0, ge=0, le=MAX_DB_INT, description="The next_cursor of the previous page"),
    limit: int = Query(100, ge=1, le=1000),
    _p=Depends(require(*WRITE_BANKS)),
) -> dict:
    page = state(request).banks.list_entries(name, status=status, signal_type=signal_type, after_id=cursor,
                                             limit=limit)
    return {"entries": [e.to_dict() for e in page],
            "next_cursor": page[-1].id if len(page) == limit else None}


@router.post("/banks/{name}/entries", status_code=201, summary="Add an entry by hash")
def add_entry(request: Request, name: str, body: EntryCreate,
              p: Principal = Depends(require(*WRITE_BANKS))) -> dict:
    value = json.dumps(body.value) if isinstance(body.value, list) else body.value
    try:
        entry, created = state(request).banks.add_entry(
            name, body.signal_type, value, quality=body.quality, source=body.source or "api",
            external_ids=body.external_ids, tags=body.tags, category=body.category, added_by=_who(p))
    except KeyError as exc:
        raise Problem(422, "bad-signal-type", str(exc.args[0])) from None
    _written(request)
    warnings = (pdq_warnings(entry.quality, "stored") if entry.signal_type == "pdq"
                else vpdq_warnings(entry.value, "stored") if entry.signal_type == "vpdq" else [])
    return {"entry": entry.to_dict(), "created": created, "warnings": warnings}


def _tags(*groups: list[str] | None) -> list[str]:
    """Tags from ``?tag=`` and multipart ``tags`` fields: repeated and/or comma-separated, each once."""
    out: list[str] = []
    for group in groups:
        for raw in group or []:
            for t in str(raw).split(","):
                t = t.strip()
                if t and t not in out:
                    out.append(t)
    return out


@router.post("/banks/{name}/entries/file", status_code=201, summary="Hash an uploaded file and add its signals")
def add_entry_file(
    request: Request, name: str, file: UploadFile = File(...),
    tag: list[str] | None = Query(None, description="Tags (repeatable or comma-separated)"),
    tags: list[str] | None = Form(None, description="Tags as multipart fields (repeatable or comma-separated); "
                                  "added to those of ?tag="),
    category: str | None = Query(None),
    p: Principal = Depends(require(*WRITE_BANKS)),
) -> dict:
    st = state(request)
    st.banks.get_bank(name)
    content = read_upload(file, st.settings)
    result = hash_content(content, file.filename or "-", strict=True, dense_video=True)
    return add_hashed(request, name, result, _tags(tag, tags), category, "api-file", p, content)


def add_hashed(request: Request, name: str, result: Any, tags: list[str], category: str | None, source: str,
               p: Principal, content: Any = None) -> dict:
    """Add a hashed file's signals (MD5, SHA-256, PDQ, vPDQ) to bank ``name``: the body of
    ``POST /v1/banks/{name}/entries/file`` (and ``/entries/url``). With the ``content`` at hand,
    a photo's PDQ entry also gets its stored-side canonical hashes (issue 21)."""
    st = state(request)
    recs = records_from_hash(result, tags, category, source)
    variants = stored_variants(content, result) if content is not None else []
    report = st.banks.add_records(name, recs, added_by=_who(p))
    if variants:
        st.banks.set_variants(name, result.pdq, variants)
    _written(request)
    entries = [st.banks.find_entry(name, r.signal_type, r.value) for r in recs]
    return {"entries": [e.to_dict() for e in entries if e], "added": report.added + report.reactivated,
            "hash": result.to_dict(),
            "warnings": hash_warnings(result.pdq, result.pdq_quality, result.vpdq, "stored")}


@router.get("/banks/{name}/entries/{entry_id}", summary="Get an entry")
def get_entry(request: Request, name: str, entry_id: DbId, _p=Depends(require(*WRITE_BANKS))) -> dict:
    return state(request).banks.get_entry(entry_id, bank=name).to_dict()


def _status(request: Request, name: str, entry_id: int, status: str, p: Principal | None = None,
            until: str | None = None) -> dict:
    (e,) = state(request).banks.set_status(name, status, entry_id=entry_id, actor=_who(p) if p else None,
                                           until=until)
    _written(request)
    return e.to_dict()


@router.post("/banks/{name}/entries/{entry_id}/withdraw", summary="Withdraw an entry (stops matching at once)")
def withdraw_entry(request: Request, name: str, entry_id: DbId, p: Principal = Depends(require(*WRITE_BANKS))) -> dict:
    return _status(request, name, entry_id, "withdrawn", p)


@router.post("/banks/{name}/entries/{entry_id}/disable", summary="Disable an entry (until a time, if given)")
def disable_entry(request: Request, name: str, entry_id: DbId,
                  until: str | None = Query(None, max_length=64, description="ISO 8601 time in the future: the "
                                            "entry matches again from then on, without being re-enabled"),
                  p: Principal = Depends(require(*WRITE_BANKS))) -> dict:
    return _status(request, name, entry_id, "disabled", p, until)


@router.post("/banks/{name}/entries/{entry_id}/enable", summary="Re-enable an entry")
def enable_entry(request: Request, name: str, entry_id: DbId, p: Principal = Depends(require(*WRITE_BANKS))) -> dict:
    return _status(request, name, entry_id, "active", p)


@router.post("/banks/{name}/import", summary="Import a hash list (idempotent; withdrawals remove)")
def import_list(
    request: Request, name: str, file: UploadFile = File(...),
    format: str = Query(..., description="te, stopncii, ncmec, vics, csv or consentry (what `consentry hash` prints)"),
    p: Principal = Depends(require(*WRITE_BANKS)),
) -> dict:
    from consentry.banks.formats import get_format

    if format not in FORMATS:
        raise Problem(422, "bad-format", f"format must be one of: {', '.join(FORMATS)}")
    st = state(request)
    st.banks.get_bank(name)
    file.file.seek(0)
    report = st.banks.add_records(name, get_format(format).read(file.file, source_name=file.filename),
                                  added_by=_who(p))
    _written(request)
    body: dict[str, Any] = report.to_dict()
    body["error_records"] = [{"position": e.position, "error": e.message} for e in report.errors[:100]]
    return body


@router.get("/banks/{name}/export", summary="Export a bank as a hash list (streamed)")
def export_list(
    request: Request, name: str, format: str = Query(...), include_withdrawn: bool = False,
    _p=Depends(require(*WRITE_BANKS)),
):
    from consentry.banks.formats import get_format

    if format not in FORMATS:
        raise Problem(422, "bad-format", f"format must be one of: {', '.join(FORMATS)}")
    st = state(request)
    st.banks.get_bank(name)
    module = get_format(format)

    # Written to a spooled file (memory up to 8 MiB, then disk) and streamed from there: bounded
    # memory for any bank size, and a failure while writing becomes a clean error response.
    spool = tempfile.SpooledTemporaryFile(max_size=8 << 20)
    module.write(st.banks.iter_records(name, include_withdrawn=include_withdrawn,
                                       as_exchanged=format != "consentry"), spool)
    spool.seek(0)

    def chunks() -> Iterator[bytes]:
        try:
            while chunk := spool.read(1 << 16):
                yield chunk
        finally:
            spool.close()

    ext = {"te": "txt", "csv": "csv", "ncmec": "xml", "consentry": "jsonl"}.get(format, "json")
    return StreamingResponse(chunks(), media_type=_MEDIA[format],
                             headers={"Content-Disposition": f'attachment; filename="{name}.{ext}"'})


@router.get("/changes", summary="The append-only change log (tail it with the cursor)")
def changes(
    request: Request, cursor: int = Query(0, ge=0, le=MAX_DB_INT), limit: int = Query(1000, ge=1, le=10_000),
    published: bool = Query(False, description="Only banks published to partners (always so for matchers)"),
    p: Principal = Depends(require(*CHANGES)),
) -> dict:
    from consentry.victims.hub import published_bank_ids

    st = state(request)
    scoped = published or p.role not in ("curator", "admin")
    rows = st.banks.changes_since(cursor, limit, bank_ids=published_bank_ids(st.banks) if scoped else None)
    ids = [r["entry_id"] for r in rows if r["entry_id"] is not None]
    entries = st.banks.entries_by_id(ids)
    banks = st.banks.banks_by_id()
    for r in rows:
        found = entries.get(r["entry_id"]) if r["entry_id"] is not None else None
        bank = banks.get(r["bank_id"]) if r["bank_id"] is not None else None
        r["bank"] = bank.name if bank else None
        if r["op"] == "bank" and bank is not None:  # its timed disable now (partners follow it)
            r["bank_disabled_until"] = bank.disabled_until.isoformat() if bank.disabled_until else None
        if found:
            e, _ = found
            r.update(signal_type=e.signal_type, value=e.value, status=e.status, quality=e.quality,
                     disabled_until=e.disabled_until.isoformat() if e.disabled_until else None)
    return {"changes": rows, "next_cursor": rows[-1]["cursor"] if rows else cursor}
