"""Model inventory: generator model files found by structure, hashed in one streamed pass.

Formats are recognised from their bytes, never from the file name:

* **safetensors** — an 8-byte little-endian header length, then a JSON header (validated:
  every tensor's dtype, shape and data offsets inside the file); ``__metadata__`` holds the
  training metadata of LoRAs (``ss_*``, kohya sd-scripts) and ``modelspec.*`` fields;
* **GGUF** — magic ``GGUF``, key/value metadata and tensor infos (quantised FLUX/SD models);
* **PyTorch checkpoints** — a ZIP holding ``*/data.pkl`` or a legacy pickle stream: walked
  opcode by opcode with :mod:`pickletools` for tensor names (never unpickled);
* **ONNX** — a ``ModelProto`` whose first fields are ``ir_version`` and a producer name.

Hashes (all from one read of the file, at disk speed, never the whole file in memory):

* ``sha256`` (Civitai's "SHA256"), ``autov2`` = its first 10 hex — what AUTOMATIC1111 ≥ 1.0
  prints as ``Model hash``;
* ``a1111_legacy_hash`` — the first 8 hex of the SHA-256 of the 0x10000 bytes at offset
  0x100000 (AUTOMATIC1111's original ``model_hash``, also kohya's ``model_hash``);
* ``addnet_hash`` — safetensors LoRAs and other non-checkpoint files: SHA-256 of everything
  after the header (kohya's ``addnet_hash_safetensors``, unchanged when only metadata is
  edited); ``autov3`` = its first 12 hex, what AUTOMATIC1111 prints in ``Lora hashes``.
  Checkpoints are named by AutoV2 or the legacy hash, so they are not hashed twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import pickletools
import re
import struct
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any, BinaryIO, Callable

#: safetensors JSON header: bigger is refused (the format's own readers cap it at 100 MB)
MAX_HEADER_BYTES = 100 * 1024 * 1024
#: pickle bytes walked for tensor names (``data.pkl`` of a zip checkpoint, a legacy stream)
MAX_PICKLE_BYTES = 64 * 1024 * 1024
#: GGUF key/value + tensor-info bytes read
MAX_GGUF_HEADER_BYTES = 32 * 1024 * 1024
#: tensor names kept for the architecture guess
MAX_NAMES = 200_000
#: metadata fields kept per model, and their length
MAX_META_FIELDS = 200
MAX_META_CHARS = 2000
LEGACY_OFFSET, LEGACY_LENGTH = 0x100000, 0x10000
_CHUNK = 8 * 1024 * 1024

_TORCH_LEGACY_MAGIC = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19"
_ST_DTYPES = {"F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "U16", "U32", "U64", "BOOL",
              "F8_E4M3", "F8_E5M2", "F8_E8M0", "F6_E2M3", "F6_E3M2", "F4", "C64"}


class ModelError(Exception):
    """A file that looks like a model but whose structure is broken (a per-file note)."""


# --------------------------------------------------------------------------- recognising
def sniff_model(head: bytes, size: int) -> str | None:
    """The model format from the first bytes of a file (``None``: not a model we recognise).
    ZIP checkpoints need the file itself: see :func:`sniff_model_file`."""
    if len(head) >= 9:
        n = int.from_bytes(head[:8], "little")
        if 2 <= n <= MAX_HEADER_BYTES and n + 8 <= size and head[8:9] == b"{":
            return "safetensors"
    if head[:4] == b"GGUF" and size >= 24:
        return "gguf"
    if head.startswith(_TORCH_LEGACY_MAGIC):
        return "torch-pickle"
    if len(head) >= 8 and head[0] == 0x08 and 1 <= head[1] <= 30 and size >= 64:
        tag, ln = head[2], head[3] if len(head) > 3 else 0
        if tag == 0x12 and 0 < ln < 64 and len(head) >= 4 + ln and head[4:4 + ln].isascii() \
                and head[4:4 + ln].decode("ascii").isprintable():
            return "onnx"
    return None


def torch_zip_pickle(zf: zipfile.ZipFile) -> zipfile.ZipInfo | None:
    """The ``data.pkl`` of a PyTorch ZIP checkpoint (``archive/data.pkl``), if this is one."""
    for info in zf.infolist()[:100_000]:
        if info.filename == "data.pkl" or info.filename.endswith("/data.pkl") and info.filename.count("/") == 1:
            return info
    return None


def sniff_model_file(path: str, head: bytes, size: int) -> str | None:
    """:func:`sniff_model`, plus PyTorch ZIP checkpoints (read from the ZIP's central directory)."""
    fmt = sniff_model(head, size)
    if fmt is None and head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                if torch_zip_pickle(zf) is not None:
                    return "torch-zip"
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            return None
    return fmt


# --------------------------------------------------------------------------- hashing
class _Hashes:
    """md5, sha1, sha256, the addnet hash and the legacy slice, fed in file order."""

    def __init__(self, addnet_from: int | None):
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha1 = hashlib.sha1(usedforsecurity=False)
        self.sha256 = hashlib.sha256()
        self.addnet = hashlib.sha256() if addnet_from is not None else None
        self.addnet_from = addnet_from or 0
        self.legacy = bytearray()
        self.pos = 0

    def feed(self, chunk: bytes, pool: ThreadPoolExecutor | None) -> None:
        view = memoryview(chunk)
        jobs: list[Callable[[], Any]] = [lambda: self.md5.update(view), lambda: self.sha1.update(view),
                                         lambda: self.sha256.update(view)]
        end = self.pos + len(chunk)
        if self.addnet is not None and end > self.addnet_from:
            part = view[max(0, self.addnet_from - self.pos):]
            jobs.append(lambda: self.addnet.update(part))
        lo, hi = max(self.pos, LEGACY_OFFSET), min(end, LEGACY_OFFSET + LEGACY_LENGTH)
        if lo < hi:
            self.legacy += view[lo - self.pos:hi - self.pos]
        if pool is None:
            for job in jobs:
                job()
        else:  # hashlib releases the GIL: the digests run side by side
            for f in [pool.submit(job) for job in jobs]:
                f.result()
        self.pos = end

    def result(self) -> dict[str, Any]:
        sha = self.sha256.hexdigest()
        out = {"md5": self.md5.hexdigest(), "sha1": self.sha1.hexdigest(), "sha256": sha, "autov2": sha[:10],
               "a1111_legacy_hash": hashlib.sha256(bytes(self.legacy)).hexdigest()[:8]}
        if self.addnet is not None:
            out["addnet_hash"] = self.addnet.hexdigest()
            out["autov3"] = out["addnet_hash"][:12]
        return out


def hash_model_stream(fh: BinaryIO, addnet_from: int | None = None, *, parallel: bool = True) -> dict[str, Any]:
    """All model hashes in one sequential read (the next chunk is read while the last is hashed)."""
    h = _Hashes(addnet_from)
    pool = ThreadPoolExecutor(4, thread_name_prefix="model-hash") if parallel else None
    try:
        chunk = fh.read(_CHUNK)
        while chunk:
            if pool is not None:
                nxt = pool.submit(fh.read, _CHUNK)
                h.feed(chunk, pool)
                chunk = nxt.result()
            else:
                h.feed(chunk, None)
                chunk = fh.read(_CHUNK)
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    out = h.result()
    out["size"] = h.pos
    return out


# --------------------------------------------------------------------------- safetensors
def read_safetensors_header(fh: BinaryIO, size: int) -> tuple[dict[str, Any], int]:
    """``(header, data_start)``; :class:`ModelError` for anything that breaks the format."""
    fh.seek(0)
    raw = fh.read(8)
    if len(raw) < 8:
        raise ModelError("safetensors: file shorter than its header length")
    n = int.from_bytes(raw, "little")
    if n > MAX_HEADER_BYTES:
        raise ModelError(f"safetensors: header of {n} bytes is over the limit of {MAX_HEADER_BYTES}")
    if n + 8 > size:
        raise ModelError("safetensors: header runs past the end of the file")
    text = fh.read(n)
    if len(text) != n:
        raise ModelError("safetensors: truncated header")
    try:
        header = json.loads(text.decode("utf-8").rstrip(" "))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ModelError(f"safetensors: header is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(header, dict):
        raise ModelError("safetensors: header is not a JSON object")
    data_len = size - 8 - n
    for name, t in header.items():
        if name == "__metadata__":
            if not isinstance(t, dict):
                raise ModelError("safetensors: __metadata__ is not an object")
            continue
        if not (isinstance(t, dict) and isinstance(t.get("dtype"), str) and isinstance(t.get("shape"), list)
                and isinstance(t.get("data_offsets"), list) and len(t["data_offsets"]) == 2):
            raise ModelError(f"safetensors: tensor {name[:80]!r} has no dtype/shape/data_offsets")
        a, b = t["data_offsets"]
        if not (isinstance(a, int) and isinstance(b, int) and 0 <= a <= b <= data_len):
            raise ModelError(f"safetensors: tensor {name[:80]!r} lies outside the file")
        if not all(isinstance(d, int) and d >= 0 for d in t["shape"]):
            raise ModelError(f"safetensors: tensor {name[:80]!r} has a bad shape")
    return header, 8 + n


def _clip(v: Any, n: int = MAX_META_CHARS) -> str:
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    s = s.replace("\x00", "")
    return s if len(s) <= n else s[:n] + "…"


def describe_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """What an examiner wants from safetensors ``__metadata__``: base model, trigger words,
    training facts (``ss_*``), ``modelspec.*`` — bounded."""
    out: dict[str, Any] = {}
    kept = {}
    for k in sorted(meta)[:5000]:
        if len(kept) >= MAX_META_FIELDS:
            break
        if k.startswith(("ss_", "modelspec.", "sshs_")) or k in ("format", "trigger_words", "trigger_phrase"):
            if k in ("ss_tag_frequency", "ss_dataset_dirs", "ss_bucket_info"):
                continue  # summarised below
            kept[k] = _clip(meta[k], 300)
    out["fields"] = kept
    out["base_model"] = (meta.get("ss_sd_model_name") or meta.get("ss_base_model_version")
                         or meta.get("modelspec.architecture"))
    out["name"] = meta.get("ss_output_name") or meta.get("modelspec.title")
    words: list[str] = []
    for key in ("modelspec.trigger_phrase", "trigger_phrase", "trigger_words"):
        if isinstance(meta.get(key), str):
            words += [w.strip() for w in meta[key].split(",") if w.strip()]
    freq = _json_field(meta.get("ss_tag_frequency"))
    if isinstance(freq, dict):  # {"10_folder": {"tag": count, ...}}: the most frequent tags
        counts: dict[str, int] = {}
        for tags in list(freq.values())[:100]:
            if isinstance(tags, dict):
                for tag, c in list(tags.items())[:10_000]:
                    if isinstance(tag, str) and isinstance(c, int):
                        counts[tag.strip()] = counts.get(tag.strip(), 0) + c
        words += [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
    out["trigger_words"] = [_clip(w, 200) for w in dict.fromkeys(words)][:30]
    dirs = _json_field(meta.get("ss_dataset_dirs"))
    if isinstance(dirs, dict):
        out["training_folders"] = {_clip(k, 200): v.get("img_count") if isinstance(v, dict) else None
                                   for k, v in list(dirs.items())[:50]}
    training = {k: meta[k] for k in ("ss_training_started_at", "ss_training_finished_at", "ss_num_train_images",
                                     "ss_num_epochs", "ss_network_module", "ss_network_dim", "ss_resolution")
                if k in meta}
    if training:
        out["training"] = {k: _clip(v, 200) for k, v in training.items()}
    return {k: v for k, v in out.items() if v not in (None, {}, [])}


def _json_field(v: Any) -> Any:
    if isinstance(v, str) and len(v) <= 16 * 1024 * 1024:
        try:
            return json.loads(v)
        except (ValueError, RecursionError):
            return None
    return v if isinstance(v, dict) else None


# --------------------------------------------------------------------------- GGUF
_GGUF_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
_GGUF_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}


class _Reader:
    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ModelError("GGUF: header truncated or over the read limit")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.u("<Q")
        if n > 1 << 24:
            raise ModelError("GGUF: string too long")
        return self.take(n).decode("utf-8", "replace")


def read_gguf(fh: BinaryIO) -> tuple[dict[str, Any], list[str], dict[str, list[int]]]:
    fh.seek(0)
    r = _Reader(fh.read(MAX_GGUF_HEADER_BYTES))
    if r.take(4) != b"GGUF":
        raise ModelError("GGUF: bad magic")
    version = r.u("<I")
    if version < 2:
        raise ModelError(f"GGUF: version {version} not supported")
    n_tensors, n_kv = r.u("<Q"), r.u("<Q")
    meta: dict[str, Any] = {"gguf.version": version}
    for _ in range(min(n_kv, 100_000)):
        key = r.string()
        vtype = r.u("<I")
        value = _gguf_value(r, vtype)
        if len(meta) < MAX_META_FIELDS and value is not None:
            meta[key] = value
    names: list[str] = []
    shapes: dict[str, list[int]] = {}
    for _ in range(min(n_tensors, MAX_NAMES)):
        name = r.string()
        nd = r.u("<I")
        if nd > 8:
            raise ModelError("GGUF: tensor with more than 8 dimensions")
        dims = [r.u("<Q") for _ in range(nd)]
        r.u("<I")
        r.u("<Q")
        names.append(name)
        shapes[name] = list(reversed(dims))  # GGUF lists dimensions fastest first
    return meta, names, shapes


def _gguf_value(r: _Reader, vtype: int) -> Any:
    if vtype in _GGUF_FMT:
        return r.u(_GGUF_FMT[vtype])
    if vtype == 8:
        return _clip(r.string(), 300)
    if vtype == 9:
        itype, n = r.u("<I"), r.u("<Q")
        if itype in _GGUF_FIXED:
            r.take(_GGUF_FIXED[itype] * n)
        elif itype == 8:
            for _ in range(n):
                r.string()
        else:
            raise ModelError("GGUF: nested array")
        return f"[{n} values]"
    raise ModelError(f"GGUF: unknown value type {vtype}")


# --------------------------------------------------------------------------- pickles
def pickle_tensor_names(data: bytes, max_pickles: int = 1) -> tuple[list[str], bool]:
    """String constants of a pickle that look like tensor names, and whether it rebuilds torch
    tensors. Opcodes are only listed (:func:`pickletools.genops`): nothing is executed."""
    names: list[str] = []
    torch = False
    f = io.BytesIO(data)
    for _ in range(max_pickles):
        if f.tell() >= len(data):
            break
        try:
            for op, arg, _pos in pickletools.genops(f):
                if isinstance(arg, str):
                    if "torch" in arg or "_rebuild_tensor" in arg:
                        torch = True
                    elif "." in arg and " " not in arg and len(arg) < 300 and len(names) < MAX_NAMES:
                        names.append(arg)
                if op.name == "STOP":
                    break
        except (ValueError, EOFError, struct.error, UnicodeDecodeError):
            break  # the rest of a legacy stream is raw storage bytes
    return names, torch


# --------------------------------------------------------------------------- architecture
_META_ARCH = (
    (re.compile(r"flux", re.I), "FLUX"),
    (re.compile(r"sd3|stable-diffusion-3", re.I), "SD3"),
    (re.compile(r"sdxl|stable-diffusion-xl|sd_xl", re.I), "SDXL"),
    (re.compile(r"sd_v2|sd_2|stable-diffusion-v2|v2-", re.I), "SD 2.x"),
    (re.compile(r"sd_v1|sd_1|stable-diffusion-v1|v1-5|sd15", re.I), "SD 1.x"),
)
_CTX_DIM = {768: "SD 1.x", 1024: "SD 2.x", 2048: "SDXL"}
_LORA_MARKS = ("lora_up", "lora_down", "lora_A", "lora_B", "lora.up", "lora.down", "hada_w1", "lokr_w1",
               "lora_unet_", "lora_te_", "lora_te1_", "lora_te2_")


def guess_kind(names: list[str]) -> str:
    if any(m in n for n in names[:20000] for m in _LORA_MARKS):
        return "lora"
    if any(n.startswith(("model.diffusion_model.", "double_blocks.", "joint_blocks.", "model.double_blocks."))
           for n in names):
        return "checkpoint"
    if names and all(n in ("emb_params", "clip_l", "clip_g") or n.startswith(("string_to_param", "string_to_token"))
                     for n in names):
        return "embedding"
    if any(n.startswith(("encoder.down", "first_stage_model.encoder")) for n in names) and \
            any(n.startswith(("decoder.up", "first_stage_model.decoder")) for n in names):
        return "vae"
    if any(n.startswith(("down_blocks.", "transformer_blocks.", "single_transformer_blocks.")) for n in names):
        return "diffusers-component"
    return "other"


def guess_architecture(names: list[str], shapes: dict[str, list[int]] | None = None,
                       meta: dict[str, Any] | None = None) -> tuple[str | None, str | None]:
    """``(architecture, basis)``: SD 1.x / SD 2.x / SDXL / FLUX / SD3, and what said so."""
    meta = meta or {}
    for key in ("ss_base_model_version", "modelspec.architecture", "general.architecture"):
        v = meta.get(key)
        if isinstance(v, str):
            for rx, arch in _META_ARCH:
                if rx.search(v):
                    return arch, f"metadata {key} = {v[:80]}"
    joined = names[:MAX_NAMES]
    marks = (
        ("FLUX", ("double_blocks.", "double_blocks_", "single_transformer_blocks.")),
        ("SD3", ("joint_blocks.", "joint_blocks_")),
        ("SDXL", ("conditioner.embedders.1", "lora_te2_", "model.diffusion_model.label_emb", "add_embedding.")),
        ("SD 2.x", ("cond_stage_model.model.",)),
        ("SD 1.x", ("cond_stage_model.transformer.",)),
    )
    for arch, needles in marks:
        for n in joined:
            for needle in needles:
                if needle in n:
                    return arch, f"tensor name {n[:120]}"
    for n in joined:  # the cross-attention context width: 768 (CLIP-L), 1024 (OpenCLIP-H), 2048 (SDXL)
        if ("attn2.to_k" in n or "attn2_to_k" in n) and n.endswith("weight") and shapes and shapes.get(n):
            dim = shapes[n][-1]
            if dim in _CTX_DIM:
                return _CTX_DIM[dim], f"cross-attention width {dim} ({n[:120]})"
    return None, None


# --------------------------------------------------------------------------- the inventory record
def inspect_model(fh: BinaryIO, size: int, fmt: str, *, hash_file: bool = True,
                  parallel: bool = True) -> dict[str, Any]:
    """The inventory record of one model file (``fh`` seekable). Structure first, then the
    hashes in one streamed pass. A structure problem is a note; the hashes are still computed."""
    rec: dict[str, Any] = {"format": fmt, "size": size, "notes": []}
    names: list[str] = []
    shapes: dict[str, list[int]] = {}
    meta: dict[str, Any] = {}
    addnet_from: int | None = None
    try:
        if fmt == "safetensors":
            header, addnet_from = read_safetensors_header(fh, size)
            raw_meta = header.pop("__metadata__", None) or {}
            meta = {k: v for k, v in list(raw_meta.items())[:10_000] if isinstance(k, str)}
            names = list(header)[:MAX_NAMES]
            shapes = {k: header[k]["shape"] for k in names}
            rec["tensors"] = len(header)
            dtypes = sorted({header[k]["dtype"] for k in names})
            rec["dtypes"] = [d for d in dtypes if d in _ST_DTYPES][:10] or dtypes[:5]
            if meta:
                rec["metadata"] = describe_metadata(meta)
        elif fmt == "gguf":
            meta, names, shapes = read_gguf(fh)
            rec["tensors"] = len(names)
            rec["metadata"] = {"fields": {k: v for k, v in meta.items() if k.startswith(("general.", "gguf."))}}
        elif fmt == "torch-zip":
            fh.seek(0)
            with zipfile.ZipFile(fh) as zf:
                info = torch_zip_pickle(zf)
                if info is None:
                    raise ModelError("ZIP checkpoint without data.pkl")
                if info.file_size > MAX_PICKLE_BYTES:
                    raise ModelError(f"data.pkl of {info.file_size} bytes is over the limit of {MAX_PICKLE_BYTES}")
                with zf.open(info) as pk:
                    names, torch = pickle_tensor_names(pk.read(MAX_PICKLE_BYTES))
                rec["torch"] = torch
        elif fmt == "torch-pickle":
            fh.seek(0)
            names, torch = pickle_tensor_names(fh.read(min(size, MAX_PICKLE_BYTES)), max_pickles=4)
            rec["torch"] = torch
        elif fmt == "onnx":
            fh.seek(0)
            head = fh.read(80)
            rec["producer"] = head[4:4 + head[3]].decode("ascii", "replace")
    except ModelError as exc:
        rec["notes"].append(str(exc))
    except (OSError, zipfile.BadZipFile, EOFError, ValueError, struct.error) as exc:
        rec["notes"].append(f"{fmt}: structure could not be read ({type(exc).__name__})")
    if fmt != "onnx":
        rec["kind"] = guess_kind(names)
        arch, basis = guess_architecture(names, shapes, meta)
        if arch is None and fmt == "gguf" and names:
            arch, basis = guess_architecture(names, shapes)
        rec["architecture"], rec["architecture_basis"] = arch, basis
    if hash_file:
        fh.seek(0)
        # the addnet hash is how A1111 names LoRAs and embeddings ("Lora hashes"); checkpoints are
        # named by the full SHA-256 (AutoV2) or the legacy hash, so their 7 GB are not read twice over
        if rec.get("kind") == "checkpoint":
            addnet_from = None
        rec.update(hash_model_stream(fh, addnet_from, parallel=parallel))
    if not rec["notes"]:
        del rec["notes"]
    return rec


def inspect_model_path(path: str, fmt: str | None = None, *, parallel: bool = True) -> dict[str, Any] | None:
    """:func:`inspect_model` of a file on disk; ``None`` when it is not a model after all."""
    import os

    size = os.path.getsize(path)
    with open(path, "rb", buffering=0) as fh:
        head = fh.read(64)
        fmt = fmt or sniff_model_file(path, head, size)
        if fmt is None:
            return None
        return inspect_model(fh, size, fmt, parallel=parallel)


def inspect_model_bytes(data: bytes) -> dict[str, Any] | None:
    """:func:`inspect_model` of an archive member held in memory."""
    fmt = sniff_model(data[:64], len(data))
    if fmt is None and data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                fmt = "torch-zip" if torch_zip_pickle(zf) is not None else None
        except (zipfile.BadZipFile, ValueError, EOFError):
            fmt = None
    if fmt is None:
        return None
    return inspect_model(io.BytesIO(data), len(data), fmt, parallel=False)


def is_model_record(rec: dict[str, Any] | None) -> bool:
    """A pickle that rebuilds no torch tensor and names no tensor is not listed as a model."""
    if not rec:
        return False
    if rec["format"] in ("torch-pickle",) and not rec.get("torch"):
        return False
    return True
