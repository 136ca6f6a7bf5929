"""A benign "seized device" of an image-generator user, built for the AI-forensics scan tests.

Tiny model files with real-format headers and the tensor names of each architecture (zeros and
noise for weights), a ComfyUI workflow and history, AUTOMATIC1111 files, an InvokeAI-schema
SQLite database, a Fooocus log, and landscape pictures drawn with Pillow whose metadata names
those models. Every prompt and name is a plain benign phrase.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import sqlite3
import struct
import zipfile
from pathlib import Path

import numpy as np
from PIL import PngImagePlugin

from imagegen import encode, scene

_ITEM = {"F16": 2, "F32": 4, "BF16": 2, "I8": 1}
T0 = 1_700_000_000  # file times of the A1111 session (2023-11-14)
COMFY_T0 = 1_709_287_200  # ComfyUI history: 2024-03-01 10:00 UTC


def safetensors_bytes(tensors: dict[str, tuple[str, list[int]]], metadata: dict[str, str] | None = None,
                      seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    header: dict = {}
    blobs = []
    off = 0
    for name, (dtype, shape) in tensors.items():
        n = int(np.prod(shape)) * _ITEM[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + n]}
        blobs.append(rng.integers(0, 256, n, dtype=np.uint8).tobytes())
        off += n
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


_PAD = ("F16", [640, 1024])  # 1.25 MiB: past A1111's legacy-hash window at 0x100000

ARCH_TENSORS = {
    "SD 1.x": {"cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": ("F16", [64, 768]),
               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 768]),
               "first_stage_model.decoder.conv_in.weight": ("F16", [8, 4]),
               "model.diffusion_model.out.2.weight": _PAD},
    "SD 2.x": {"cond_stage_model.model.token_embedding.weight": ("F16", [64, 1024]),
               "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [320, 1024]),
               "model.diffusion_model.out.2.weight": _PAD},
    "SDXL": {"conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight": ("F16", [64, 768]),
             "conditioner.embedders.1.model.token_embedding.weight": ("F16", [64, 1280]),
             "model.diffusion_model.label_emb.0.0.weight": ("F16", [16, 16]),
             "model.diffusion_model.input_blocks.4.1.transformer_blocks.0.attn2.to_k.weight": ("F16", [640, 2048]),
             "model.diffusion_model.out.2.weight": _PAD},
    "FLUX": {"double_blocks.0.img_attn.qkv.weight": ("BF16", [96, 32]),
             "single_blocks.0.linear1.weight": ("BF16", [64, 32]),
             "img_in.weight": _PAD},
    "SD3": {"model.diffusion_model.joint_blocks.0.context_block.attn.qkv.weight": ("F16", [96, 32]),
            "model.diffusion_model.x_embedder.proj.weight": _PAD},
}

LORA_SDXL = {
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_down.weight": ("F16", [8, 2048]),
    "lora_unet_input_blocks_4_1_transformer_blocks_0_attn2_to_k.lora_up.weight": ("F16", [640, 8]),
    "lora_te2_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": ("F16", [512, 1024]),
    "lora_te2_text_model_encoder_layers_0_mlp_fc1.alpha": ("F16", [1]),
}
LORA_SDXL_META = {
    "ss_output_name": "watercolor_teapot", "ss_base_model_version": "sdxl_base_v1-0",
    "ss_sd_model_name": "sd_xl_base_1.0.safetensors", "ss_network_module": "networks.lora", "ss_network_dim": "8",
    "ss_training_started_at": "1699990000.5", "ss_num_train_images": "24",
    "ss_tag_frequency": json.dumps({"10_teapot": {"watercolor teapot": 24, "kitchen table": 5}}),
    "ss_dataset_dirs": json.dumps({"10_teapot": {"n_repeats": 10, "img_count": 24}}),
}
LORA_SD1 = {  # no metadata: the architecture comes from the cross-attention width (768)
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight": ("F16", [4, 768]),
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_up.weight": ("F16", [320, 4]),
    "lora_unet_pad.lora_up.weight": _PAD,
}


def gguf_bytes() -> bytes:
    def s(x: str) -> bytes:
        b = x.encode()
        return struct.pack("<Q", len(b)) + b

    out = b"GGUF" + struct.pack("<IQQ", 3, 2, 3)
    out += s("general.architecture") + struct.pack("<I", 8) + s("flux")
    out += s("general.name") + struct.pack("<I", 8) + s("meadow flux q4")
    out += s("general.tags") + struct.pack("<I", 9) + struct.pack("<IQ", 8, 2) + s("meadow") + s("flowers")
    for name in ("double_blocks.0.img_attn.qkv.weight", "single_blocks.0.linear1.weight"):
        out += s(name) + struct.pack("<I", 2) + struct.pack("<QQ", 32, 96) + struct.pack("<IQ", 1, 0)
    return out + b"\x00" * 4096


def torch_zip_bytes() -> bytes:
    """A PyTorch-style ZIP checkpoint: ``archive/data.pkl`` naming SD 1.x tensors. The pickle is
    written here (never loaded by the scanner)."""
    state = {"state_dict": {
        "cond_stage_model.transformer.text_model.embeddings.position_ids": ("torch._utils", "_rebuild_tensor_v2"),
        "model.diffusion_model.input_blocks.0.0.weight": ("torch._utils", "_rebuild_tensor_v2"),
    }}
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("archive/data.pkl", pickle.dumps(state, protocol=2))
        z.writestr("archive/version", "3\n")
        z.writestr("archive/data/0", b"\x00" * 2048)
    return buf.getvalue()


def hashes_of(data: bytes) -> dict[str, str]:
    """The reference hashes, computed here independently of the scanner."""
    sha = hashlib.sha256(data).hexdigest()
    out = {"sha256": sha, "autov2": sha[:10],
           "a1111_legacy_hash": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8]}
    if data[8:9] == b"{" and b"lora_" in data[:4096]:  # the addnet hash is kept for LoRAs
        n = struct.unpack("<Q", data[:8])[0]
        out["addnet_hash"] = hashlib.sha256(data[8 + n:]).hexdigest()
        out["autov3"] = out["addnet_hash"][:12]
    return out


def comfy_graph(ckpt: str, lora: str | None, seed: int, text: str) -> dict:
    g = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": ckpt}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry", "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {"seed": seed, "steps": 25, "cfg": 6.5, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1.0, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0]}},
    }
    if lora:
        g["10"] = {"class_type": "LoraLoader", "inputs": {"lora_name": lora, "strength_model": 0.7,
                                                          "model": ["4", 0], "clip": ["4", 1]}}
    return g


def _png(k: int, **texts: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, v in texts.items():
        info.add_text(key, v)
    return encode(scene(160, 120, seed=k), "PNG", pnginfo=info)


def infotext(prompt: str, seed: int, model: str, model_hash: str, lora_hashes: str | None = None) -> str:
    tail = f', Lora hashes: "{lora_hashes}"' if lora_hashes else ""
    return (f"{prompt}\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: {seed}, "
            f"Size: 160x120, Model hash: {model_hash}, Model: {model}{tail}, Version: v1.9.4")


def invokeai_db(path: Path) -> None:
    """An InvokeAI database with the real ``images`` schema (migration v0) and a ``models`` table."""
    con = sqlite3.connect(path)
    con.executescript("""
        CREATE TABLE images (
          image_name TEXT NOT NULL PRIMARY KEY, image_origin TEXT NOT NULL, image_category TEXT NOT NULL,
          width INTEGER NOT NULL, height INTEGER NOT NULL, session_id TEXT, node_id TEXT, metadata TEXT,
          is_intermediate BOOLEAN DEFAULT FALSE,
          created_at DATETIME NOT NULL DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')),
          updated_at DATETIME NOT NULL DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')), deleted_at DATETIME);
        CREATE TABLE models (id TEXT NOT NULL PRIMARY KEY, config TEXT NOT NULL,
          created_at DATETIME NOT NULL DEFAULT(STRFTIME('%Y-%m-%d %H:%M:%f', 'NOW')));
    """)
    con.execute("INSERT INTO models (id, config) VALUES (?, ?)", ("k-mountain", json.dumps(
        {"key": "k-mountain", "name": "mountain_lake_v1", "base": "sd-1", "type": "main", "format": "checkpoint",
         "path": "/invokeai/models/sd-1/main/mountain_lake_v1.safetensors", "hash": "blake3:00ff"})))
    for i in range(2):
        meta = {"generation_mode": "txt2img", "positive_prompt": "a mountain lake at sunrise, pine trees",
                "negative_prompt": "blurry", "width": 160, "height": 120, "seed": 777 + i, "cfg_scale": 7.5,
                "steps": 30, "scheduler": "euler", "app_version": "4.2.0",
                "model": {"key": "k-mountain", "hash": "blake3:00ff", "name": "mountain_lake_v1", "base": "sd-1",
                          "type": "main"}}
        con.execute("INSERT INTO images (image_name, image_origin, image_category, width, height, session_id, "
                     "metadata, created_at) VALUES (?, 'internal', 'general', 160, 120, 'sess-1', ?, ?)",
                     (f"invoke_000{i + 1}.png", json.dumps(meta), f"2024-03-0{1 + i} 10:00:00.000"))
    con.commit()
    con.close()


def build(root: Path) -> dict:
    """Write the tree; returns what tests need (paths, reference hashes)."""
    root.mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    models = {
        "models/Stable-diffusion/sd_xl_lighthouse.safetensors": safetensors_bytes(ARCH_TENSORS["SDXL"], seed=1),
        "models/Stable-diffusion/mountain_lake_v1.safetensors": safetensors_bytes(
            ARCH_TENSORS["SD 1.x"], {"modelspec.title": "mountain lake"}, seed=2),
        "models/Stable-diffusion/sd2_harbor.bin": safetensors_bytes(ARCH_TENSORS["SD 2.x"], seed=3),  # odd name
        "models/unet/flux_meadow.safetensors": safetensors_bytes(ARCH_TENSORS["FLUX"], seed=4),
        "models/checkpoints/sd3_garden.safetensors": safetensors_bytes(ARCH_TENSORS["SD3"], seed=5),
        "models/Lora/watercolor_teapot.safetensors": safetensors_bytes(LORA_SDXL, LORA_SDXL_META, seed=6),
        "models/Lora/orchard_style.safetensors": safetensors_bytes(LORA_SD1, seed=7),
        "models/old/lighthouse_v1.ckpt": torch_zip_bytes(),
        "models/gguf/meadow-Q4.gguf": gguf_bytes(),
    }
    files.update(models)
    files["models/fake.safetensors"] = b"not a model, just a note about a lighthouse\n"
    files["models/broken.safetensors"] = struct.pack("<Q", 20) + b"{not json at all!!!}" + b"\x00" * 64
    ref = {p: hashes_of(d) for p, d in models.items()}
    sdxl, lora = ref["models/Stable-diffusion/sd_xl_lighthouse.safetensors"], ref["models/Lora/watercolor_teapot.safetensors"]
    sd2 = ref["models/Stable-diffusion/sd2_harbor.bin"]
    # an A1111 session: 4 images, sequential seeds, a minute apart; AutoV2 model hash + AutoV3 LoRA hash
    for i in range(4):
        files[f"outputs/txt2img-images/2023-11-14/0000{i + 1}-{1000 + i}.png"] = _png(
            i, parameters=infotext("a lighthouse at dusk, oil painting <lora:watercolor_teapot:0.8>", 1000 + i,
                                   "sd_xl_lighthouse", sdxl["autov2"], f"watercolor_teapot: {lora['autov3']}"))
    # the same settings a day later: another session
    files["outputs/txt2img-images/2023-11-15/00005-5000.png"] = _png(
        5, parameters=infotext("a lighthouse at dusk, oil painting", 5000, "sd_xl_lighthouse", sdxl["autov2"]))
    # the legacy 8-hex model hash of an older A1111
    files["outputs/old/00001-42.png"] = _png(6, parameters=infotext("a harbor with boats", 42, "sd2_harbor",
                                                                    sd2["a1111_legacy_hash"]))
    # a model that is not on the evidence
    files["outputs/misc/00001-9.png"] = _png(7, parameters=infotext("a red bicycle", 9, "missing_model", "0123456789"))
    # ComfyUI: two images naming their checkpoint and LoRA by file name
    comfy_runs = [("mountain_lake_v1.safetensors", "orchard_style.safetensors", seed,
                   f"a mountain lake with a wooden pier, calm water{extra}")
                  for seed, extra in ((31337, ""), (98765, ", morning mist"))]  # random seeds, similar prompts
    for i, run in enumerate(comfy_runs):
        files[f"ComfyUI/output/ComfyUI_0000{i + 1}_.png"] = _png(10 + i, prompt=json.dumps(comfy_graph(*run)))
    # InvokeAI: an image whose metadata names a model by key, resolved through invokeai.db
    files["invokeai/outputs/images/invoke_0001.png"] = _png(20, invokeai_metadata=json.dumps(
        {"positive_prompt": "a mountain lake at sunrise, pine trees", "seed": 777, "steps": 30,
         "model": {"key": "k-mountain", "name": "mountain_lake_v1", "base": "sd-1"}}))
    # generator files
    files["ComfyUI/user/default/workflows/lake.json"] = json.dumps(
        comfy_graph("mountain_lake_v1.safetensors", None, 5, "a mountain lake, watercolor")).encode()
    history = {}
    for i, (ckpt, lora, seed, text) in enumerate(comfy_runs):  # when each ComfyUI image was made
        history[f"p-{i + 1}"] = {
            "prompt": [i + 1, f"p-{i + 1}", comfy_graph(ckpt, lora, seed, text), {}, ["9"]],
            "outputs": {"9": {"images": [{"filename": f"ComfyUI_0000{i + 1}_.png", "subfolder": "", "type": "output"}]}},
            "status": {"status_str": "success", "completed": True, "messages": [
                ["execution_start", {"prompt_id": f"p-{i + 1}", "timestamp": COMFY_T0 * 1000 + 90_000 * i}]]}}
    history["p-9"] = {"prompt": [9, "p-9", comfy_graph("flux_meadow.safetensors", None, 1, "a meadow of flowers"), {}, []],
                      "outputs": {}, "status": {"messages": []}}
    files["ComfyUI/history.json"] = json.dumps(history).encode()
    files["stable-diffusion-webui/params.txt"] = infotext("a lighthouse at dusk", 1003, "sd_xl_lighthouse",
                                                          sdxl["autov2"]).encode()
    files["stable-diffusion-webui/styles.csv"] = (b'name,prompt,negative_prompt\n'
                                                  b'Teapot,"watercolor teapot, {prompt}",blurry\n'
                                                  b'Lake,"mountain lake, calm",\n')
    files["stable-diffusion-webui/ui-config.json"] = json.dumps(
        {"txt2img/Prompt/value": "a lighthouse at dusk", "txt2img/Seed/value": -1,
         "txt2img/Sampling steps/value": 20, "txt2img/Width/value": 512}).encode()
    files["stable-diffusion-webui/config.json"] = json.dumps(
        {"sd_model_checkpoint": f"sd_xl_lighthouse.safetensors [{sdxl['autov2']}]", "CLIP_stop_at_last_layers": 1,
         "outdir_txt2img_samples": "outputs/txt2img-images"}).encode()
    files["Fooocus/outputs/2024-02-01/log.html"] = (
        "<html><head><title>Fooocus Log 2024-02-01</title></head><body>"
        "<div id=\"2024-02-01_10-00-00_1234.png\" class=\"image-container\"><hr><table><tr><td>"
        "<table class='metadata'><tr><td class='label'>Prompt</td><td class='value'>a watercolor teapot on a table</td></tr>"
        "<tr><td class='label'>Base Model</td><td class='value'>sd_xl_lighthouse.safetensors</td></tr>"
        "<tr><td class='label'>Seed</td><td class='value'>1234</td></tr>"
        "<tr><td class='label'>LoRA 1</td><td class='value'>watercolor_teapot.safetensors : 0.5</td></tr>"
        "<tr><td class='label'>Version</td><td class='value'>Fooocus v2.5.0</td></tr></table></td></tr></table></div>"
        "</body></html>").encode()
    files["diffusers/harbor-pipeline/model_index.json"] = json.dumps(
        {"_class_name": "StableDiffusionXLPipeline", "_diffusers_version": "0.27.0",
         "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}).encode()
    files["notes/todo.txt"] = b"buy paint for the fence\n"
    for name, data in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    (root / "invokeai/databases").mkdir(parents=True, exist_ok=True)
    invokeai_db(root / "invokeai/databases/invokeai.db")
    for i in range(4):
        t = T0 + 60 * i
        os.utime(root / f"outputs/txt2img-images/2023-11-14/0000{i + 1}-{1000 + i}.png", (t, t))
    os.utime(root / "outputs/txt2img-images/2023-11-15/00005-5000.png", (T0 + 86400, T0 + 86400))
    return {"root": root, "ref": ref}
