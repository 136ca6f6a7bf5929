"""AI-generation forensics in `consentry scan` (issue 17): model inventory, generator artefacts,
image <-> model links, generation sessions, prompt triage. Everything is benign and drawn here
(see ``genai_tree``): landscapes, tiny model files with real-format headers, plain phrases."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import genai_tree as G


def _rel(root: Path, p: str) -> str:
    return os.path.relpath(p, root) if p.startswith(str(root)) else p


def _rows(out: Path, root: Path) -> dict[str, dict]:
    return {_rel(root, json.loads(x)["path"]): json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()}


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    from consentry.scan.pipeline import ScanOptions, run_scan

    base = tmp_path_factory.mktemp("genai")
    info = G.build(base / "tree")
    root = info["root"]
    # a model inside an archive (read in memory, never extracted): a FLUX LoRA
    flux_lora = G.safetensors_bytes({"lora_unet_double_blocks_0_img_attn_qkv.lora_down.weight": ("F16", [4, 32]),
                                     "lora_unet_double_blocks_0_img_attn_qkv.lora_up.weight": ("F16", [96, 4])},
                                    {"ss_output_name": "meadow_detail"}, seed=9)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("loras/meadow_detail.safetensors", flux_lora)
    (root / "backup").mkdir()
    (root / "backup/loras.zip").write_bytes(buf.getvalue())
    db = root / "invokeai/databases/invokeai.db"
    db_before = hashlib.sha256(db.read_bytes()).hexdigest()
    terms = base / "terms.txt"
    terms.write_text("# examiner's list (benign words for the test)\nteapot\nMountain Lake\n\n")
    opts = ScanOptions([str(root)], base / "out", workers=1, match=False, prompt_terms=terms)
    summary = run_scan(opts)
    return {"root": root, "out": base / "out", "rows": _rows(base / "out", root), "ref": info["ref"],
            "summary": summary, "opts": opts, "db": db, "db_before": db_before, "flux_lora": flux_lora, "base": base}


# --------------------------------------------------------------------------- 1. model inventory
def test_model_hashes_match_an_independent_computation(device):
    rows = device["rows"]
    for path, ref in device["ref"].items():
        r = rows[path]
        assert r["content_type"] == "model", path
        assert r["sha256"] == ref["sha256"] and r["status"] == "ok"
        m = r["model"]
        assert m["autov2"] == ref["autov2"] and m["a1111_legacy_hash"] == ref["a1111_legacy_hash"], path
        if "addnet_hash" in ref:  # LoRAs
            assert m["addnet_hash"] == ref["addnet_hash"] and m["autov3"] == ref["autov3"]
        else:
            assert "addnet_hash" not in m, path
        data = (device["root"] / path).read_bytes()
        assert r["md5"] == hashlib.md5(data).hexdigest() and r["size"] == len(data)


def test_architecture_and_kind_from_tensor_names_shapes_and_metadata(device):
    rows = device["rows"]
    expect = {
        "models/Stable-diffusion/sd_xl_lighthouse.safetensors": ("checkpoint", "SDXL"),
        "models/Stable-diffusion/mountain_lake_v1.safetensors": ("checkpoint", "SD 1.x"),
        "models/Stable-diffusion/sd2_harbor.bin": ("checkpoint", "SD 2.x"),
        "models/unet/flux_meadow.safetensors": ("checkpoint", "FLUX"),
        "models/checkpoints/sd3_garden.safetensors": ("checkpoint", "SD3"),
        "models/Lora/watercolor_teapot.safetensors": ("lora", "SDXL"),  # from ss_base_model_version
        "models/Lora/orchard_style.safetensors": ("lora", "SD 1.x"),  # from the 768-wide cross-attention
        "models/old/lighthouse_v1.ckpt": ("checkpoint", "SD 1.x"),  # pickle names, never unpickled
        "models/gguf/meadow-Q4.gguf": ("checkpoint", "FLUX"),
        "backup/loras.zip!/loras/meadow_detail.safetensors": ("lora", "FLUX"),
    }
    got = {p: (rows[p]["model"]["kind"], rows[p]["model"]["architecture"]) for p in expect}
    assert got == expect
    assert "768" in rows["models/Lora/orchard_style.safetensors"]["model"]["architecture_basis"]
    member = rows["backup/loras.zip!/loras/meadow_detail.safetensors"]
    assert member["sha256"] == hashlib.sha256(device["flux_lora"]).hexdigest()
    assert member["model"]["autov3"] == G.hashes_of(device["flux_lora"])["autov3"]


def test_models_are_found_by_structure_not_by_name(device):
    rows = device["rows"]
    assert rows["models/fake.safetensors"].get("model") is None  # a text file named like a model
    assert rows["models/Stable-diffusion/sd2_harbor.bin"]["model"]["format"] == "safetensors"
    # a PyTorch ZIP checkpoint is inventoried, not opened as an archive
    assert rows["models/old/lighthouse_v1.ckpt"]["model"]["format"] == "torch-zip"
    assert not any(p.startswith("models/old/lighthouse_v1.ckpt!/") for p in rows)
    broken = rows["models/broken.safetensors"]
    assert broken["status"] == "ok" and "not valid JSON" in broken["model"]["notes"][0]
    assert broken["sha256"] == hashlib.sha256((device["root"] / "models/broken.safetensors").read_bytes()).hexdigest()


def test_lora_training_metadata_and_trigger_words(device):
    m = device["rows"]["models/Lora/watercolor_teapot.safetensors"]["model"]["metadata"]
    assert m["name"] == "watercolor_teapot" and m["base_model"] == "sd_xl_base_1.0.safetensors"
    assert m["trigger_words"][:2] == ["watercolor teapot", "kitchen table"]  # most frequent tags first
    assert m["training"]["ss_num_train_images"] == "24" and m["training_folders"] == {"10_teapot": 24}
    assert m["fields"]["ss_network_dim"] == "8"
    gguf = device["rows"]["models/gguf/meadow-Q4.gguf"]["model"]["metadata"]["fields"]
    assert gguf["general.name"] == "meadow flux q4" and gguf["general.tags"] == "[2 values]"


# --------------------------------------------------------------------------- 3. generator artefacts
def test_generator_artefacts_are_parsed_with_their_source(device):
    rows = device["rows"]
    art = {p: r["artefact"] for p, r in rows.items() if r.get("artefact")}
    assert {p: a["kind"] for p, a in art.items()} == {
        "ComfyUI/history.json": "comfyui-history", "ComfyUI/user/default/workflows/lake.json": "comfyui-workflow",
        "stable-diffusion-webui/params.txt": "a1111-params", "stable-diffusion-webui/styles.csv": "a1111-styles",
        "stable-diffusion-webui/ui-config.json": "a1111-ui-config", "stable-diffusion-webui/config.json": "webui-config",
        "invokeai/databases/invokeai.db": "invokeai-db", "Fooocus/outputs/2024-02-01/log.html": "fooocus-log",
        "diffusers/harbor-pipeline/model_index.json": "diffusers-model"}
    hist = art["ComfyUI/history.json"]["generations"]
    assert [g["seed"] for g in hist[:2]] == [31337, 98765] and hist[0]["images"] == ["ComfyUI_00001_.png"]
    assert hist[0]["time"] == "2024-03-01T10:00:00Z" and hist[0]["loras"][0]["name"] == "orchard_style.safetensors"
    wf = art["ComfyUI/user/default/workflows/lake.json"]["generations"][0]
    assert wf["model"] == "mountain_lake_v1.safetensors" and wf["prompt"] == "a mountain lake, watercolor"
    params = art["stable-diffusion-webui/params.txt"]["generations"][0]
    assert params["seed"] == 1003 and params["source"] == "params.txt"
    assert [s["name"] for s in art["stable-diffusion-webui/styles.csv"]["styles"]] == ["Teapot", "Lake"]
    ui = art["stable-diffusion-webui/ui-config.json"]
    assert ui["generations"][0]["prompt"] == "a lighthouse at dusk" and ui["settings"]["txt2img/Width/value"] == 512
    cfg = art["stable-diffusion-webui/config.json"]
    assert cfg["models"][0]["hash"] == device["ref"]["models/Stable-diffusion/sd_xl_lighthouse.safetensors"]["autov2"]
    inv = art["invokeai/databases/invokeai.db"]
    assert [(g["image"], g["seed"], g["time"]) for g in inv["generations"]] == [
        ("invoke_0001.png", 777, "2024-03-01 10:00:00.000"), ("invoke_0002.png", 778, "2024-03-02 10:00:00.000")]
    assert inv["generations"][0]["model_key"] == "k-mountain" and inv["generations"][0]["steps"] == 30
    assert inv["models"][0]["path"].endswith("mountain_lake_v1.safetensors")
    foo = art["Fooocus/outputs/2024-02-01/log.html"]["generations"][0]
    assert foo["seed"] == 1234 and foo["image"] == "2024-02-01_10-00-00_1234.png"
    assert foo["loras"][0]["name"] == "watercolor_teapot.safetensors"
    assert art["diffusers/harbor-pipeline/model_index.json"]["architecture"] == "SDXL"


def test_the_invokeai_database_is_read_without_changing_it(device):
    assert hashlib.sha256(device["db"].read_bytes()).hexdigest() == device["db_before"]
    assert sorted(p.name for p in device["db"].parent.iterdir()) == ["invokeai.db"]  # no -wal/-shm/-journal


# --------------------------------------------------------------------------- 2. images <-> models
def test_images_link_to_the_model_files_they_name(device):
    rows, root = device["rows"], device["root"]
    sdxl = str(root / "models/Stable-diffusion/sd_xl_lighthouse.safetensors")
    first = rows["outputs/txt2img-images/2023-11-14/00001-1000.png"]["model_links"]
    assert first[0].startswith(f"generated with checkpoint sd_xl_lighthouse, present at {sdxl} (sha256 ")
    assert "(AutoV2)" in first[0] and "watercolor_teapot.safetensors" in first[1] and "(AutoV3)" in first[1]
    assert "A1111 legacy model hash" in rows["outputs/old/00001-42.png"]["model_links"][0]
    assert "sd2_harbor.bin" in rows["outputs/old/00001-42.png"]["model_links"][0]
    assert rows["outputs/misc/00001-9.png"]["model_links"] == [
        "generated with checkpoint missing_model: not found on the evidence"]
    comfy = rows["ComfyUI/output/ComfyUI_00001_.png"]["model_links"]
    assert "mountain_lake_v1.safetensors, present at" in comfy[0] and "matched by file name" in comfy[0]
    assert "orchard_style.safetensors" in comfy[1]
    # InvokeAI: the image names a model key, its database gives the file
    assert "mountain_lake_v1.safetensors (sha256" in rows["invokeai/outputs/images/invoke_0001.png"]["model_links"][0]
    assert rows["models/Stable-diffusion/sd_xl_lighthouse.safetensors"]["model_used_by"] == 5
    assert rows["models/checkpoints/sd3_garden.safetensors"]["model_used_by"] == 0
    g = device["summary"].genai
    assert g["links_absent"] == 1 and g["models"] == 12


# --------------------------------------------------------------------------- 4. sessions
def test_sessions_group_runs_and_keep_a_timeline(device):
    rows = device["rows"]
    a1111 = [f"outputs/txt2img-images/2023-11-14/0000{i + 1}-{1000 + i}.png" for i in range(4)]
    sess = {p: rows[p]["session"] for p in a1111}
    assert len({s["id"] for s in sess.values()}) == 1
    assert [sess[p]["position"] for p in a1111] == [1, 2, 3, 4] and sess[a1111[0]]["of"] == 4
    # same generator, model and settings a day later: a session of its own
    assert rows["outputs/txt2img-images/2023-11-15/00005-5000.png"]["session"]["id"] != sess[a1111[0]]["id"]
    # ComfyUI: random seeds but similar prompts, 90 s apart by ComfyUI's own history
    c1, c2 = rows["ComfyUI/output/ComfyUI_00001_.png"]["session"], rows["ComfyUI/output/ComfyUI_00002_.png"]["session"]
    assert c1["id"] == c2["id"] and (c1["position"], c2["position"]) == (1, 2)
    html = (device["out"] / "report.html").read_text()
    assert f'id="session-{sess[a1111[0]]["id"]}"' in html
    assert "2024-03-01T10:00:00Z" in html and "2024-03-01T10:01:30Z" in html  # history times on the timeline
    assert "2023-11-14T22:13:20Z" in html  # the first A1111 image's file time
    assert "1000–1003 (sequential)" in html


# --------------------------------------------------------------------------- 5. prompt triage
def test_term_list_flags_prompts_and_reports_withhold_them(device):
    rows = device["rows"]
    assert rows["ComfyUI/output/ComfyUI_00001_.png"]["prompt_flags"] == ["mountain lake"]
    assert rows["stable-diffusion-webui/styles.csv"]["prompt_flags"] == ["teapot", "mountain lake"]
    # the LoRA tag in the prompt (<lora:watercolor_teapot:0.8>) counts: its words are words of the prompt
    assert rows["outputs/txt2img-images/2023-11-14/00001-1000.png"]["prompt_flags"] == ["teapot"]
    assert "prompt_flags" not in rows["outputs/old/00001-42.png"]  # a harbor with boats: no term
    html = (device["out"] / "report.html").read_text()
    assert 'id="genai-flags"' in html and "prompt withheld" in html
    pdf = subprocess.run(["pdftotext", "-layout", str(device["out"] / "report.pdf"), "-"], capture_output=True,
                         text=True, check=True).stdout
    csv_text = (device["out"] / "results.csv").read_text()
    for prompt in ("a mountain lake with a wooden pier", "a lighthouse at dusk", "watercolor teapot, {prompt}"):
        assert prompt not in html and prompt not in pdf and prompt not in csv_text
    # the PDF carries the same forensics: inventory, sessions with their timelines, flags
    for heading in ("Model inventory", "Generation sessions", "Prompts flagged by the term list"):
        assert heading in pdf
    assert "Session 1" in pdf and "sd_xl_lighthouse.safetensors" in pdf
    assert device["summary"].genai["flagged_prompts"] >= 3


def test_show_prompts_puts_them_in_clear(device, tmp_path):
    from consentry.scan.pipeline import run_scan

    out = tmp_path / "out"
    shutil.copytree(device["out"], out)
    opts = device["opts"]
    again = run_scan(type(opts)(**{**opts.__dict__, "out": out, "show_prompts": True}))
    assert again.scanned == 0  # resumed: nothing re-read, reports re-rendered
    html = (out / "report.html").read_text()
    assert "a mountain lake with a wooden pier" in html and "prompt withheld" not in html
    assert "a mountain lake with a wooden pier" in (out / "results.csv").read_text()
    # the analysis is a pure function of scan.db: the same results on resume
    assert _rows(out, device["root"]).keys() == device["rows"].keys()
    assert all(_rows(out, device["root"])[p].get("session") == r.get("session") for p, r in device["rows"].items())


def test_term_list_matches_whole_words_only(tmp_path):
    from consentry.scan.genai.prompts import flag, load_terms, shown

    f = tmp_path / "t.txt"
    f.write_text("lake\ncalm water # a phrase\n")
    terms = load_terms(f)
    assert terms == ["lake", "calm water"]
    assert flag("Calm water on the LAKE.", terms) == ["lake", "calm water"]
    assert flag("lakeside, water calm", terms) == []
    assert load_terms(None) == [] and flag("anything", []) == []
    assert shown("a quiet lake", False).startswith("[prompt withheld: 3 words") and shown("a quiet lake", True) == "a quiet lake"


# --------------------------------------------------------------------------- robustness
def test_model_parsers_are_bounded_and_never_execute_pickles():
    from consentry.scan.genai import models as M

    assert M.sniff_model(struct.pack("<Q", M.MAX_HEADER_BYTES + 1) + b"{", 10**10) is None
    assert M.sniff_model(struct.pack("<Q", 100) + b"{", 50) is None  # header past the end
    bad = G.safetensors_bytes({"a.weight": ("F16", [2, 2])})
    n = struct.unpack("<Q", bad[:8])[0]
    hdr = json.loads(bad[8:8 + n])
    hdr["a.weight"]["data_offsets"] = [0, 10**9]
    h = json.dumps(hdr).encode()
    rec = M.inspect_model(io.BytesIO(struct.pack("<Q", len(h)) + h + b"\0" * 8), len(h) + 16, "safetensors")
    assert "outside the file" in rec["notes"][0] and rec["sha256"]
    # a pickle that would call a function when loaded: only its opcodes are listed
    evil = b"\x80\x02cnonexistent_module_for_test\nboom\nX\x09\x00\x00\x00model.a.b\x85R."
    names, torch = M.pickle_tensor_names(evil)
    assert names == ["model.a.b"] and torch is False
    for cut in (5, 20, 60, 120):  # truncated GGUF: a note, never an exception
        rec = M.inspect_model(io.BytesIO(G.gguf_bytes()[:cut]), cut, "gguf")
        assert rec["notes"] and rec["sha256"] == hashlib.sha256(G.gguf_bytes()[:cut]).hexdigest()


def test_a_large_sparse_model_is_streamed_in_the_model_lane(tmp_path):
    from consentry.scan.pipeline import ScanOptions, run_scan

    root = tmp_path / "dev"
    root.mkdir()
    head = G.safetensors_bytes(G.ARCH_TENSORS["SDXL"], seed=1)
    big = root / "big.safetensors"
    with open(big, "wb") as fh:  # a header that claims 96 MiB of weights, written sparse
        n = struct.unpack("<Q", head[:8])[0]
        hdr = json.loads(head[8:8 + n])
        hdr["model.diffusion_model.out.2.weight"]["shape"] = [48 * 1024, 1024]
        hdr["model.diffusion_model.out.2.weight"]["data_offsets"][1] = hdr["model.diffusion_model.out.2.weight"]["data_offsets"][0] + 96 * 1024**2
        h = json.dumps(hdr).encode()
        fh.write(struct.pack("<Q", len(h)) + h)
        fh.truncate(8 + len(h) + max(t["data_offsets"][1] for k, t in hdr.items()))
    (root / "a.png").write_bytes(G._png(1))
    s = run_scan(ScanOptions([str(root)], tmp_path / "out", match=False, reports=False))
    assert s.errors == 0 and s.scanned == 2
    rows = _rows_db(tmp_path / "out")
    data = big.read_bytes()
    assert rows[str(big)]["sha256"] == hashlib.sha256(data).hexdigest()
    assert json.loads(rows[str(big)]["model"])["a1111_legacy_hash"] == G.hashes_of(data)["a1111_legacy_hash"]


def _rows_db(out: Path) -> dict[str, dict]:
    import sqlite3

    con = sqlite3.connect(out / "scan.db")
    con.row_factory = sqlite3.Row
    try:
        return {r["path"]: dict(r) for r in con.execute("SELECT * FROM items")}
    finally:
        con.close()


def test_an_older_scan_db_is_upgraded_in_place(tmp_path):
    import sqlite3

    from consentry.scan.store import ScanStore

    from consentry.scan.store import _SCHEMA

    db = tmp_path / "scan.db"
    con = sqlite3.connect(db)
    old = _SCHEMA.replace(",\n    model TEXT, artefact TEXT, generation TEXT", "")  # schema version 1
    assert "artefact" not in old
    con.executescript(old)
    con.execute("INSERT INTO items (path, kind, status) VALUES ('/x.png', 'file', 'ok')")
    con.commit()
    con.close()
    ScanStore(db).close()
    con = sqlite3.connect(db)
    cols = {r[1] for r in con.execute("PRAGMA table_info(items)")}
    kept = con.execute("SELECT path FROM items").fetchall()
    con.close()
    assert {"model", "artefact", "generation"} <= cols and kept == [("/x.png",)]


# --------------------------------------------------------------------------- CLI
def test_cli_options_and_summary(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("CONSENTRY_DEBUG", "DATABASE_URL")}
    env["CONSENTRY_HOME"] = str(home)
    root = tmp_path / "dev"
    root.mkdir()
    (root / "Lora").mkdir()
    (root / "Lora/orchard_style.safetensors").write_bytes(G.safetensors_bytes(G.LORA_SD1, seed=7))
    (root / "params.txt").write_text(G.infotext("a quiet orchard", 3, "orchard_base", "0123456789"))
    terms = tmp_path / "terms.txt"
    terms.write_text("orchard\n")
    run = lambda *a: subprocess.run([sys.executable, "-m", "consentry", "scan", *map(str, a)], capture_output=True,
                                    text=True, env=env, timeout=300)
    p = run(root, "--out", tmp_path / "o", "--no-match", "--prompt-terms", terms)
    assert p.returncode == 0, p.stderr
    assert "1 model file" in p.stderr and "1 generator file" in p.stderr and "1 flagged prompt" in p.stderr
    assert "Traceback" not in p.stderr and str(tmp_path / "o" / "report.html") in p.stdout
    p = run(root, "--out", tmp_path / "o2", "--prompt-terms", tmp_path / "nope.txt")
    assert p.returncode == 2 and "--prompt-terms" in p.stderr and "Traceback" not in p.stderr
    p = run(root, "--out", tmp_path / "o3", "--no-match", "--no-genai")
    assert p.returncode == 0 and "AI-generation forensics" not in p.stderr
    assert '"model"' not in (tmp_path / "o3" / "results.jsonl").read_text()


# --------------------------------------------------------------------------- 6. speed: copies reuse results
def test_copies_of_a_picture_are_analysed_once_with_identical_results(tmp_path, monkeypatch):
    import consentry.signals.pdq as pdq_mod
    from consentry.scan import worker
    from consentry.scan.pipeline import ScanOptions, run_scan

    calls = []
    real = pdq_mod.pdq_hash_dihedral
    monkeypatch.setattr(pdq_mod, "pdq_hash_dihedral", lambda px: calls.append(1) or real(px))
    worker._SEEN.clear()
    root = tmp_path / "dev"
    data = G._png(3, parameters=G.infotext("a quiet harbor", 11, "harbor_base", "0123456789"))
    for p in ("a/one.png", "b/two.png", "c/three.png"):
        (root / p).parent.mkdir(parents=True, exist_ok=True)
        (root / p).write_bytes(data)
    (root / "d.png").write_bytes(G._png(4))
    run_scan(ScanOptions([str(root)], tmp_path / "out", match=False))
    assert len(calls) == 2  # one decode and fingerprint per distinct picture
    rows = _rows(tmp_path / "out", root)
    a, b = rows["a/one.png"], rows["c/three.png"]
    for k in ("pdq", "pdq_variants", "ai_verdict", "generation"):
        assert a[k] == b[k] and a[k] is not None, k
    assert b["assessment"]["path"] == str(root / "c/three.png") and b["assessment"]["evidence"] == a["assessment"]["evidence"]
    assert rows["b/two.png"]["session"]["of"] == 3
