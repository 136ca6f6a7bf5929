"""Generator-metadata analyser: one synthesised file per recognised format, plus malformed input.

Every picture is a benign drawing (tests/imagegen.py); every prompt is a benign description.
Containers are assembled byte by byte here (EXIF in both byte orders, JPEG APP1, PNG chunks,
NovelAI's alpha-LSB encoding) so the tests do not depend on the reader's own helpers.
"""

from __future__ import annotations

import gzip
import json
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from consentry.config import MediaLimits
from consentry.evidence.metadata import analyze_metadata
from consentry.evidence.metadata.exif import decode_user_comment
from consentry.evidence.model import Findings
from imagegen import encode, scene

PROMPT = "a lighthouse at dusk, oil painting"
NEGATIVE = "blurry, low contrast"
DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"


# --------------------------------------------------------------------------- builders


def tiff_exif(ifd0: dict[int, str] | None = None, user_comment: bytes | None = None,
              little: bool = False) -> bytes:
    """A TIFF-structured EXIF block: ASCII tags in IFD0, UserComment in the Exif IFD."""
    e = "<" if little else ">"
    ifd0 = dict(ifd0 or {})
    entries0 = sorted(ifd0.items())
    n0 = len(entries0) + (1 if user_comment is not None else 0)
    ifd0_size = 2 + 12 * n0 + 4
    data_off = 8 + ifd0_size
    blobs = b""
    rows = []
    for tag, text in entries0:
        raw = text.encode("utf-8") + b"\x00"
        if len(raw) <= 4:
            rows.append(struct.pack(e + "HHI", tag, 2, len(raw)) + raw.ljust(4, b"\x00"))
        else:
            rows.append(struct.pack(e + "HHII", tag, 2, len(raw), data_off + len(blobs)))
            blobs += raw + (b"\x00" if len(raw) % 2 else b"")
    exif_ifd = b""
    if user_comment is not None:
        exif_ifd_off = data_off + len(blobs)
        rows.append(struct.pack(e + "HHII", 0x8769, 4, 1, exif_ifd_off))
        uc_off = exif_ifd_off + 2 + 12 + 4
        exif_ifd = (struct.pack(e + "H", 1) + struct.pack(e + "HHII", 0x9286, 7, len(user_comment), uc_off)
                    + struct.pack(e + "I", 0) + user_comment)
    rows.sort(key=lambda r: struct.unpack(e + "H", r[:2])[0])
    head = (b"II*\x00" if little else b"MM\x00*") + struct.pack(e + "I", 8)
    return head + struct.pack(e + "H", n0) + b"".join(rows) + struct.pack(e + "I", 0) + blobs + exif_ifd


def jpeg_with_app1(payloads: list[bytes], img: Image.Image | None = None) -> bytes:
    """A JPEG with the given APP1 segment bodies inserted right after SOI."""
    base = encode(img or scene(64, 48), "JPEG", quality=80)
    segs = b"".join(b"\xff\xe1" + struct.pack(">H", len(p) + 2) + p for p in payloads)
    return base[:2] + segs + base[2:]


def jpeg_exif(block: bytes) -> bytes:
    return jpeg_with_app1([b"Exif\x00\x00" + block])


def jpeg_xmp(packet: str | bytes) -> bytes:
    packet = packet.encode("utf-8") if isinstance(packet, str) else packet
    return jpeg_with_app1([b"http://ns.adobe.com/xap/1.0/\x00" + packet])


def png_chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body))


def png_with_chunks(chunks: list[bytes], img: Image.Image | None = None) -> bytes:
    """A PNG with extra chunks inserted right after IHDR."""
    base = encode(img or scene(64, 48), "PNG")
    ihdr_end = 8 + 8 + 13 + 4
    return base[:ihdr_end] + b"".join(chunks) + base[ihdr_end:]


def png_text(**fields: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in fields.items():
        info.add_itxt(k, v) if not v.isascii() else info.add_text(k, v)
    return encode(scene(64, 48), "PNG", pnginfo=info)


def xmp_packet(description_attrs: str = "", body: str = "", extra_ns: str = "") -> str:
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">'
        '<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description rdf:about="" '
        'xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmlns:dc="http://purl.org/dc/elements/1.1/" '
        'xmlns:exif="http://ns.adobe.com/exif/1.0/" '
        f'xmlns:TC260="http://www.tc260.org.cn/ns/AIGC/1.0/" {extra_ns} {description_attrs}>'
        f"{body}</rdf:Description></rdf:RDF></x:xmpmeta>"
        '<?xpacket end="w"?>'
    )


def lang_alt(tag: str, text: str) -> str:
    from xml.sax.saxutils import escape

    return f'<{tag}><rdf:Alt><rdf:li xml:lang="x-default">{escape(text)}</rdf:li></rdf:Alt></{tag}>'


def only(findings: Findings, source: str):
    found = [e for e in findings.evidence if e.source == source]
    assert len(found) == 1, (source, findings)
    return found[0]


def sources(findings: Findings) -> list[str]:
    return sorted(e.source for e in findings.evidence)


INFOTEXT = (
    f"{PROMPT}\nNegative prompt: {NEGATIVE}\n"
    "Steps: 28, Sampler: DPM++ 2M Karras, CFG scale: 6.5, Seed: 3141592653, Size: 64x48, "
    "Model hash: 31e35c80fc, Model: sd_xl_base_1.0, Version: {version}"
)


# --------------------------------------------------------------------------- PNG generators


@pytest.mark.parametrize(
    "version,generator",
    [
        ("v1.10.1", "AUTOMATIC1111 Stable Diffusion WebUI"),
        ("f2.0.1v1.10.1-previous-313-g8a042934", "Stable Diffusion WebUI Forge"),
        ("SD.Next 2024-11-28", "SD.Next"),
    ],
)
def test_png_parameters_a1111_forge_sdnext(version, generator):
    f = analyze_metadata(png_text(parameters=INFOTEXT.format(version=version)), "image/png")
    ev = only(f, "png:a1111")
    assert (ev.claim, ev.strength) == ("ai_generated", "strong")
    d = ev.details
    assert d["generator"] == generator
    assert d["model"] == "sd_xl_base_1.0"
    assert d["prompt"] == PROMPT
    assert d["negative_prompt"] == NEGATIVE
    assert (d["seed"], d["steps"], d["sampler"]) == (3141592653, 28, "DPM++ 2M Karras")
    assert d["version"] == version
    assert f.notes == []


def comfy_graph() -> dict:
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "3": {"class_type": "KSampler", "inputs": {
            "seed": 156680208700286, "steps": 20, "cfg": 8, "sampler_name": "euler", "scheduler": "normal",
            "denoise": 1, "model": ["4", 0], "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": ["5", 0]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
    }


def comfy_workflow() -> dict:
    return {"last_node_id": 9, "nodes": [
        {"id": 4, "type": "CheckpointLoaderSimple", "widgets_values": ["sd_xl_base_1.0.safetensors"]},
        {"id": 3, "type": "KSampler", "widgets_values": [156680208700286, "fixed", 20, 8, "euler", "normal", 1]},
        {"id": 6, "type": "CLIPTextEncode", "widgets_values": [PROMPT]},
    ], "links": []}


def assert_comfy(details: dict, negative: bool = True) -> None:
    assert details["generator"] == "ComfyUI"
    assert details["model"] == "sd_xl_base_1.0.safetensors"
    assert details["prompt"] == PROMPT
    assert (details["seed"], details["steps"], details["sampler"]) == (156680208700286, 20, "euler")
    if negative:
        assert details["negative_prompt"] == NEGATIVE


def test_png_comfyui_prompt_and_workflow_chunks():
    data = png_text(prompt=json.dumps(comfy_graph()), workflow=json.dumps(comfy_workflow()))
    ev = only(analyze_metadata(data, "image/png"), "png:comfyui")
    assert (ev.claim, ev.strength) == ("ai_generated", "strong")
    assert_comfy(ev.details)


def test_png_comfyui_workflow_only():
    ev = only(analyze_metadata(png_text(workflow=json.dumps(comfy_workflow())), "image/png"), "png:comfyui")
    assert_comfy(ev.details, negative=False)


def test_webp_comfyui_exif_model_and_make():
    block = tiff_exif({0x0110: "prompt:" + json.dumps(comfy_graph()),
                       0x010F: "workflow:" + json.dumps(comfy_workflow())}, little=True)
    data = encode(scene(64, 48), "WEBP", exif=b"Exif\x00\x00" + block, lossless=True)
    f = analyze_metadata(data, "image/webp")
    ev = only(f, "exif:comfyui")
    assert_comfy(ev.details)
    assert not any(e.claim == "camera_captured" for e in f.evidence)  # "workflow:" is no camera make


def novelai_comment() -> dict:
    return {"prompt": PROMPT, "uc": NEGATIVE, "steps": 28, "seed": 1234567890, "sampler": "k_euler_ancestral",
            "scale": 5.0, "width": 64, "height": 48, "request_type": "PromptGenerateRequest"}


def test_png_novelai_chunks():
    data = png_text(Title="NovelAI generated image", Description=PROMPT, Software="NovelAI",
                    Source="NovelAI Diffusion V4.5 1229B44F", Comment=json.dumps(novelai_comment()))
    ev = only(analyze_metadata(data, "image/png"), "png:novelai")
    d = ev.details
    assert (ev.claim, ev.strength) == ("ai_generated", "strong")
    assert d["generator"] == "NovelAI"
    assert d["model"] == "NovelAI Diffusion V4.5 1229B44F"
    assert (d["prompt"], d["negative_prompt"]) == (PROMPT, NEGATIVE)
    assert (d["seed"], d["steps"], d["sampler"]) == (1234567890, 28, "k_euler_ancestral")


def stealth_image(payload: bytes, magic: bytes, size=(96, 80)) -> Image.Image:
    """Our own encoder: magic, 32-bit big-endian bit length, payload; column-major alpha LSBs."""
    bits = np.unpackbits(np.frombuffer(magic + struct.pack(">I", len(payload) * 8) + payload, np.uint8))
    w, h = size
    assert bits.size <= w * h
    rgba = np.array(scene(w, h).convert("RGBA"))
    alpha = np.full(w * h, 255, np.uint8)
    alpha[: bits.size] = 254 | bits
    rgba[..., 3] = alpha.reshape(w, h).T  # flat index i -> column i // h, row i % h
    return Image.fromarray(rgba, "RGBA")


def test_novelai_stealth_compressed_alpha_lsb():
    fields = {"Software": "NovelAI", "Source": "NovelAI Diffusion V4.5 1229B44F",
              "Comment": json.dumps(novelai_comment())}
    img = stealth_image(gzip.compress(json.dumps(fields).encode()), b"stealth_pngcomp")
    data = encode(img, "PNG")  # no text chunks at all: only the pixels carry the metadata
    f = analyze_metadata(data, "image/png")
    ev = only(f, "novelai:stealth")
    d = ev.details
    assert (ev.claim, ev.strength) == ("ai_generated", "strong")
    assert d["generator"] == "NovelAI"
    assert d["model"] == "NovelAI Diffusion V4.5 1229B44F"
    assert (d["prompt"], d["seed"], d["steps"]) == (PROMPT, 1234567890, 28)
    assert d["stealth_magic"] == "stealth_pngcomp"
    assert sources(f) == ["novelai:stealth"]
    # The caller's already-converted RGB copy must not hide it: the analyser reopens the header.
    rgb = Image.open(__import__("io").BytesIO(data)).convert("RGB")
    assert sources(analyze_metadata(data, "image/png", rgb)) == ["novelai:stealth"]


def test_stealth_plain_infotext_in_lossless_webp():
    img = stealth_image(INFOTEXT.format(version="v1.10.1").encode(), b"stealth_pnginfo", size=(160, 120))
    ev = only(analyze_metadata(encode(img, "WEBP", lossless=True), "image/webp"), "novelai:stealth")
    assert ev.details["generator"] == "AUTOMATIC1111 Stable Diffusion WebUI"
    assert (ev.details["prompt"], ev.details["seed"]) == (PROMPT, 3141592653)


def test_stealth_truncated_payload_is_a_note():
    img = stealth_image(b"x" * 10, b"stealth_pnginfo")
    rgba = np.array(img)
    # Rewrite the length to claim more bits than the image holds.
    bits = np.unpackbits(np.frombuffer(b"stealth_pnginfo" + struct.pack(">I", 8 * 10**6), np.uint8))
    flat = rgba[..., 3].T.reshape(-1).copy()
    flat[: bits.size] = 254 | bits
    rgba[..., 3] = flat.reshape(rgba.shape[1], rgba.shape[0]).T
    f = analyze_metadata(encode(Image.fromarray(rgba, "RGBA"), "PNG"), "image/png")
    assert f.evidence == []
    assert any("stealth" in n and "truncated" in n for n in f.notes)


def test_opaque_rgba_png_has_no_stealth_and_no_notes():
    f = analyze_metadata(encode(scene(64, 48).convert("RGBA"), "PNG"), "image/png")
    assert f.evidence == [] and f.notes == []


def test_png_invokeai_v3_v2_and_dream():
    v3 = {"app_version": "4.2.7", "generation_mode": "txt2img", "positive_prompt": PROMPT,
          "negative_prompt": NEGATIVE, "model": {"name": "Juggernaut XL v9", "base": "sdxl"},
          "seed": 987654, "steps": 30, "scheduler": "dpmpp_2m_k"}
    ev = only(analyze_metadata(png_text(invokeai_metadata=json.dumps(v3)), "image/png"), "png:invokeai")
    d = ev.details
    assert (d["generator"], d["model"], d["prompt"], d["negative_prompt"]) == ("InvokeAI", "Juggernaut XL v9", PROMPT, NEGATIVE)
    assert (d["seed"], d["steps"], d["sampler"]) == (987654, 30, "dpmpp_2m_k")

    v2 = {"model": "stable diffusion", "model_weights": "stable-diffusion-1.5", "app_id": "invoke-ai/InvokeAI",
          "app_version": "2.3.5", "image": {"prompt": [{"prompt": f"{PROMPT} [{NEGATIVE}]", "weight": 1}],
                                            "steps": 50, "seed": 42, "sampler": "k_lms"}}
    d = only(analyze_metadata(png_text(**{"sd-metadata": json.dumps(v2)}), "image/png"), "png:invokeai").details
    assert (d["model"], d["prompt"], d["negative_prompt"], d["seed"], d["steps"], d["sampler"]) == (
        "stable-diffusion-1.5", PROMPT, NEGATIVE, 42, 50, "k_lms")

    dream = f'"{PROMPT} [{NEGATIVE}]" -s 50 -S 42 -W 512 -H 512 -C 7.5 -A k_lms'
    d = only(analyze_metadata(png_text(Dream=dream), "image/png"), "png:invokeai").details
    assert (d["prompt"], d["negative_prompt"], d["seed"], d["steps"], d["sampler"]) == (PROMPT, NEGATIVE, 42, 50, "k_lms")


def test_png_fooocus_json_scheme():
    params = {"Prompt": PROMPT, "Negative Prompt": NEGATIVE, "Styles": "['Fooocus V2']",
              "Performance": "Speed", "Steps": 30, "Resolution": "(64, 48)", "Guidance Scale": 4,
              "Base Model": "juggernautXL_v8Rundiffusion.safetensors", "Sampler": "dpmpp_2m_sde_gpu",
              "Scheduler": "karras", "Seed": "1111222233334444", "Version": "Fooocus v2.5.5"}
    f = analyze_metadata(png_text(parameters=json.dumps(params), fooocus_scheme="fooocus"), "image/png")
    d = only(f, "png:fooocus").details
    assert (d["generator"], d["model"], d["prompt"], d["negative_prompt"]) == (
        "Fooocus", "juggernautXL_v8Rundiffusion.safetensors", PROMPT, NEGATIVE)
    assert (d["seed"], d["steps"], d["sampler"]) == (1111222233334444, 30, "dpmpp_2m_sde_gpu")
    assert sources(f) == ["png:fooocus"]


def swarm_params() -> dict:
    return {"sui_image_params": {"prompt": PROMPT, "negativeprompt": NEGATIVE, "model": "Flux/flux1-dev-fp8",
                                 "seed": 2042464333, "steps": 25, "sampler": "euler", "swarm_version": "0.9.1.1"}}


def test_png_swarmui_parameters_json():
    d = only(analyze_metadata(png_text(parameters=json.dumps(swarm_params())), "image/png"), "png:swarmui").details
    assert (d["generator"], d["model"], d["prompt"], d["negative_prompt"]) == ("SwarmUI", "Flux/flux1-dev-fp8", PROMPT, NEGATIVE)
    assert (d["seed"], d["steps"], d["sampler"], d["version"]) == (2042464333, 25, "euler", "0.9.1.1")


def test_swarmui_in_exif_user_comment():
    block = tiff_exif(user_comment=b"UNICODE\x00" + json.dumps(swarm_params()).encode("utf-16-be"))
    d = only(analyze_metadata(jpeg_exif(block), "image/jpeg"), "exif:swarmui").details
    assert (d["model"], d["seed"]) == ("Flux/flux1-dev-fp8", 2042464333)


def test_png_midjourney_description_and_tc260_chunk():
    desc = f"{PROMPT} --ar 4:3 --v 6.1 Job ID: a7421d2f-b262-44f9-977c-ac23e9c7d3e3"
    label = json.dumps({"Label": "1", "ContentProducer": "001191110108MA01KP2T5U00000", "ProduceID": "img-20250901-0001",
                        "ReservedCode1": "", "ContentPropagator": "", "PropagateID": "", "ReservedCode2": ""})
    f = analyze_metadata(png_text(Description=desc, Author="lighthouse_fan", AIGC=label), "image/png")
    mj = only(f, "png:midjourney").details
    assert (mj["prompt"], mj["model"], mj["job_id"], mj["author"]) == (
        f"{PROMPT} --ar 4:3 --v 6.1", "v6.1", "a7421d2f-b262-44f9-977c-ac23e9c7d3e3", "lighthouse_fan")
    tc = only(f, "png:tc260")
    assert (tc.claim, tc.strength, tc.details["label"]) == ("ai_generated", "strong", "1")
    assert tc.details["ContentProducer"] == "001191110108MA01KP2T5U00000"


def test_ztxt_and_itxt_chunks_are_read():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", INFOTEXT.format(version="v1.10.1"), zip=True)  # zTXt
    ev = only(analyze_metadata(encode(scene(64, 48), "PNG", pnginfo=info), "image/png"), "png:a1111")
    assert ev.details["seed"] == 3141592653
    info = PngImagePlugin.PngInfo()
    info.add_itxt("parameters", INFOTEXT.format(version="v1.10.1").replace("lighthouse", "phare ☼"), zip=True)
    ev = only(analyze_metadata(encode(scene(64, 48), "PNG", pnginfo=info), "image/png"), "png:a1111")
    assert ev.details["prompt"] == PROMPT.replace("lighthouse", "phare ☼")


# --------------------------------------------------------------------------- EXIF


@pytest.mark.parametrize(
    "comment,little",
    [
        (b"UNICODE\x00" + INFOTEXT.format(version="v1.10.1").encode("utf-16-be"), False),  # A1111/piexif
        (b"UNICODE\x00" + INFOTEXT.format(version="v1.10.1").encode("utf-16-be"), True),  # BE text, LE EXIF
        (b"UNICODE\x00" + INFOTEXT.format(version="v1.10.1").encode("utf-16-le"), True),
        (b"UNICODE\x00" + INFOTEXT.format(version="v1.10.1").encode("utf-16"), False),  # with a BOM
        (b"ASCII\x00\x00\x00" + INFOTEXT.format(version="v1.10.1").encode("ascii"), True),
    ],
    ids=["unicode-be", "unicode-be-in-le-exif", "unicode-le", "unicode-bom", "ascii"],
)
def test_jpeg_exif_user_comment_a1111(comment, little):
    f = analyze_metadata(jpeg_exif(tiff_exif(user_comment=comment, little=little)), "image/jpeg")
    ev = only(f, "exif:a1111")
    d = ev.details
    assert (ev.claim, ev.strength) == ("ai_generated", "strong")
    assert (d["prompt"], d["negative_prompt"], d["model"]) == (PROMPT, NEGATIVE, "sd_xl_base_1.0")
    assert (d["seed"], d["steps"], d["sampler"]) == (3141592653, 28, "DPM++ 2M Karras")
    assert f.notes == []


def test_user_comment_decoding_edge_cases():
    assert decode_user_comment(b"UNICODE\x00" + "é lighthouse".encode("utf-16-le"), little_endian=True) == "é lighthouse"
    assert decode_user_comment(b"\x00" * 8 + b"a lighthouse") == "a lighthouse"
    assert decode_user_comment(b"UNICODE\x00") is None


def test_jpeg_flux_exif():
    block = tiff_exif({0x0131: "AI generated;txt2img;flux", 0x010F: "Black Forest Labs",
                       0x0110: "flux-dev", 0x010E: PROMPT})
    f = analyze_metadata(jpeg_exif(block), "image/jpeg")
    ev = only(f, "exif:flux")
    assert (ev.claim, ev.strength) == ("ai_generated", "strong")
    assert (ev.details["model"], ev.details["prompt"], ev.details["mode"]) == ("flux-dev", PROMPT, "txt2img")
    assert sources(f) == ["exif:flux"]  # no camera claim from "Black Forest Labs"


def test_camera_jpeg_is_camera_captured_weak():
    block = tiff_exif({0x010F: "Canon", 0x0110: "Canon EOS R6", 0x0131: "Firmware Version 1.8.1"})
    f = analyze_metadata(jpeg_exif(block), "image/jpeg")
    ev = only(f, "exif")
    assert (ev.claim, ev.strength) == ("camera_captured", "weak")
    assert (ev.details["make"], ev.details["model"]) == ("Canon", "Canon EOS R6")
    assert ev.caveats


def test_editor_software_is_edited_weak_and_suppresses_camera():
    block = tiff_exif({0x010F: "NIKON CORPORATION", 0x0110: "NIKON Z 6", 0x0131: "Adobe Photoshop 25.0 (Windows)"})
    f = analyze_metadata(jpeg_exif(block), "image/jpeg")
    ev = only(f, "exif")
    assert (ev.claim, ev.strength, ev.details["editor"]) == ("edited", "weak", "Adobe Photoshop")


def test_no_metadata_no_evidence():
    for data, mime in ((encode(scene(64, 48), "JPEG"), "image/jpeg"), (encode(scene(64, 48), "PNG"), "image/png"),
                       (encode(scene(64, 48), "WEBP"), "image/webp"), (encode(scene(64, 48), "TIFF"), "image/tiff")):
        f = analyze_metadata(data, mime)
        assert f.evidence == [], mime
        assert f.notes == [], (mime, f.notes)


# --------------------------------------------------------------------------- XMP


@pytest.mark.parametrize(
    "code,claim,strength",
    [
        ("trainedAlgorithmicMedia", "ai_generated", "strong"),
        ("compositeWithTrainedAlgorithmicMedia", "ai_edited", "strong"),
        ("algorithmicMedia", "computer_generated", "weak"),
        ("compositeSynthetic", "ai_edited", "weak"),
        ("digitalCapture", "camera_captured", "weak"),
        ("negativeFilm", "camera_captured", "weak"),
        ("minorHumanEdits", "edited", "weak"),
        ("composite", "edited", "weak"),
    ],
)
def test_jpeg_xmp_iptc_digital_source_type(code, claim, strength):
    packet = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST}{code}"')
    f = analyze_metadata(jpeg_xmp(packet), "image/jpeg")
    ev = only(f, "xmp:iptc")
    assert (ev.claim, ev.strength) == (claim, strength)
    assert ev.details["digital_source_type"] == DST + code
    assert ev.details["code"] == code
    if code == "algorithmicMedia":
        assert any("not a claim of AI generation" in c for c in ev.caveats)


def test_iptc_2025_ai_fields_in_element_form():
    body = (f'<Iptc4xmpExt:DigitalSourceType rdf:resource="{DST}trainedAlgorithmicMedia"/>'
            "<Iptc4xmpExt:AISystemUsed>Lighthouse Diffusion</Iptc4xmpExt:AISystemUsed>"
            "<Iptc4xmpExt:AISystemVersionUsed>2.1</Iptc4xmpExt:AISystemVersionUsed>"
            f"<Iptc4xmpExt:AIPromptInformation>{PROMPT}</Iptc4xmpExt:AIPromptInformation>"
            "<Iptc4xmpExt:AIPromptWriterName>A. Keeper</Iptc4xmpExt:AIPromptWriterName>")
    ev = only(analyze_metadata(jpeg_xmp(xmp_packet(body=body)), "image/jpeg"), "xmp:iptc")
    assert ev.claim == "ai_generated"
    assert (ev.details["ai_system"], ev.details["ai_system_version"], ev.details["prompt"], ev.details["prompt_writer"]) == (
        "Lighthouse Diffusion", "2.1", PROMPT, "A. Keeper")


@pytest.mark.parametrize("code", ["dataDrivenMedia", "screenCapture", "virtualRecording", "madeUpCode"])
def test_iptc_codes_without_a_claim_are_notes(code):
    f = analyze_metadata(jpeg_xmp(xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST}{code}"')), "image/jpeg")
    assert f.evidence == []
    assert any(code in n for n in f.notes)


@pytest.mark.parametrize("label,strength", [("1", "strong"), ("2", "weak"), ("3", "weak")])
def test_xmp_tc260_label(label, strength):
    value = json.dumps({"Label": label, "ContentProducer": "001191110108MA01KP2T5U00000",
                        "ProduceID": "img-0001", "ReservedCode1": "", "ContentPropagator": "lighthouse-cdn",
                        "PropagateID": "p-77", "ReservedCode2": ""})
    from xml.sax.saxutils import escape

    f = analyze_metadata(jpeg_xmp(xmp_packet(body=f"<TC260:AIGC>{escape(value)}</TC260:AIGC>")), "image/jpeg")
    ev = only(f, "xmp:tc260")
    assert (ev.claim, ev.strength, ev.details["label"]) == ("ai_generated", strength, label)
    assert (ev.details["ContentProducer"], ev.details["PropagateID"]) == ("001191110108MA01KP2T5U00000", "p-77")
    assert len(ev.caveats) == (1 if label == "1" else 2)


def test_xmp_tc260_attribute_form_with_quot_entities():
    value = json.dumps({"Label": "1", "ContentProducer": "lighthouse-studio", "ProduceID": "x1"}).replace('"', "&quot;")
    ev = only(analyze_metadata(jpeg_xmp(xmp_packet(f'TC260:AIGC="{value}"')), "image/jpeg"), "xmp:tc260")
    assert ev.details["ContentProducer"] == "lighthouse-studio"


def draw_things_xmp() -> str:
    comment = json.dumps({"c": PROMPT, "uc": NEGATIVE, "model": "flux_1_schnell_q5p.ckpt", "seed": 2718281828,
                          "steps": 8, "sampler": "Euler A Trailing", "scale": 1, "size": "64x48"})
    desc = f"{PROMPT}\nNegative prompt: {NEGATIVE}\nSteps: 8, Sampler: Euler A Trailing, Guidance Scale: 1, Seed: 2718281828, Size: 64x48, Model: flux_1_schnell_q5p.ckpt"
    return xmp_packet(body="<xmp:CreatorTool>Draw Things</xmp:CreatorTool>"
                      + lang_alt("exif:UserComment", comment) + lang_alt("dc:description", desc))


def assert_draw_things(details: dict) -> None:
    assert details["generator"] == "Draw Things"
    assert (details["model"], details["prompt"], details["negative_prompt"]) == ("flux_1_schnell_q5p.ckpt", PROMPT, NEGATIVE)
    assert (details["seed"], details["steps"], details["sampler"]) == (2718281828, 8, "Euler A Trailing")


def test_jpeg_xmp_draw_things():
    ev = only(analyze_metadata(jpeg_xmp(draw_things_xmp()), "image/jpeg"), "xmp:drawthings")
    assert (ev.claim, ev.strength) == ("ai_generated", "strong")
    assert_draw_things(ev.details)


def test_png_itxt_xmp_draw_things():
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", draw_things_xmp())
    f = analyze_metadata(encode(scene(64, 48), "PNG", pnginfo=info), "image/png")
    assert_draw_things(only(f, "xmp:drawthings").details)


def test_jpeg_xmp_midjourney():
    body = (lang_alt("dc:description", f"{PROMPT} --ar 4:3 --niji 6 Job ID: 0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f")
            + "<Iptc4xmpExt:DigImageGUID>0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f</Iptc4xmpExt:DigImageGUID>"
            + f"<Iptc4xmpExt:DigitalSourceType>{DST}trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>"
            + '<dc:creator><rdf:Seq><rdf:li>lighthouse_fan</rdf:li></rdf:Seq></dc:creator>')
    f = analyze_metadata(jpeg_xmp(xmp_packet(body=body)), "image/jpeg")
    mj = only(f, "xmp:midjourney")
    assert (mj.claim, mj.strength) == ("ai_generated", "strong")
    d = mj.details
    assert (d["prompt"], d["model"], d["job_id"], d["dig_image_guid"], d["author"]) == (
        f"{PROMPT} --ar 4:3 --niji 6", "niji 6", "0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f",
        "0c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f", "lighthouse_fan")
    assert only(f, "xmp:iptc").claim == "ai_generated"


def test_webp_xmp_chunk_and_tiff_xmp_tag():
    packet = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia"').encode()
    webp = encode(scene(64, 48), "WEBP", xmp=packet)
    assert only(analyze_metadata(webp, "image/webp"), "xmp:iptc").claim == "ai_generated"
    tiff = encode(scene(64, 48), "TIFF", tiffinfo={700: packet, 0x0131: "GIMP 2.10.36"})
    f = analyze_metadata(tiff, "image/tiff")
    assert only(f, "xmp:iptc").claim == "ai_generated"
    assert only(f, "exif").details["editor"] == "GIMP"


def test_jpeg_extended_xmp_is_reassembled():
    main = xmp_packet('xmpNote:HasExtendedXMP="0123456789ABCDEF0123456789ABCDEF"',
                      extra_ns='xmlns:xmpNote="http://ns.adobe.com/xmp/note/"').encode()
    ext = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST}compositeWithTrainedAlgorithmicMedia"').encode()
    guid = b"0123456789ABCDEF0123456789ABCDEF"
    half = len(ext) // 2
    parts = [b"http://ns.adobe.com/xmp/extension/\x00" + guid + struct.pack(">II", len(ext), off) + ext[off:end]
             for off, end in ((half, len(ext)), (0, half))]  # out of order on purpose
    data = jpeg_with_app1([b"http://ns.adobe.com/xap/1.0/\x00" + main, *parts])
    assert only(analyze_metadata(data, "image/jpeg"), "xmp:iptc").claim == "ai_edited"


# --------------------------------------------------------------------------- malformed input


def test_oversized_xmp_is_skipped_with_a_note():
    filler = "<!-- " + "x" * (1100 * 1024) + " -->"
    packet = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia"', body=filler)
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet)
    f = analyze_metadata(encode(scene(64, 48), "PNG", pnginfo=info), "image/png")
    assert f.evidence == []
    assert any("XMP" in n and "over the limit" in n for n in f.notes)
    webp = encode(scene(64, 48), "WEBP", xmp=packet.encode())
    f = analyze_metadata(webp, "image/webp")
    assert f.evidence == [] and any("over the limit" in n for n in f.notes)


def test_oversized_extended_xmp_is_refused():
    guid = b"F" * 32
    part = b"http://ns.adobe.com/xmp/extension/\x00" + guid + struct.pack(">II", 50 * 1024 * 1024, 0) + b"<x/>"
    f = analyze_metadata(jpeg_with_app1([part]), "image/jpeg")
    assert f.evidence == [] and any("Extended XMP" in n and "over the limit" in n for n in f.notes)


BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n' for i in range(1, 10))
    + f'<!ENTITY dst "{DST}trainedAlgorithmicMedia">\n]>\n'
)


def test_billion_laughs_xmp_is_refused_without_expansion():
    body = "<Iptc4xmpExt:DigitalSourceType>&dst;</Iptc4xmpExt:DigitalSourceType><dc:title>&lol9;</dc:title>"
    packet = BILLION_LAUGHS + xmp_packet(body=body).split("?>", 1)[1]
    started = time.perf_counter()
    f = analyze_metadata(jpeg_xmp(packet), "image/jpeg")
    assert time.perf_counter() - started < 2
    # Had "&dst;" been expanded, the IPTC code would have become ai_generated evidence.
    assert f.evidence == []
    assert any("XMP packet refused" in n for n in f.notes)
    assert "lollol" not in json.dumps(f.notes)


def test_dtd_with_external_entity_is_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{DST}trainedAlgorithmicMedia")
    packet = (f'<?xml version="1.0"?>\n<!DOCTYPE x [ <!ENTITY ext SYSTEM "file://{secret}"> ]>\n'
              + xmp_packet(body="<Iptc4xmpExt:DigitalSourceType>&ext;</Iptc4xmpExt:DigitalSourceType>").split("?>", 1)[1])
    f = analyze_metadata(jpeg_xmp(packet), "image/jpeg")
    assert f.evidence == []
    assert any("XMP packet refused" in n for n in f.notes)
    # A DTD alone (no entities) is refused too.
    plain_dtd = '<!DOCTYPE x:xmpmeta>' + xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia"')
    f = analyze_metadata(jpeg_xmp(plain_dtd.replace("<?xpacket", "<?xpacket", 1)), "image/jpeg")
    assert f.evidence == [] and f.notes


def test_malformed_xml_is_a_note():
    f = analyze_metadata(jpeg_xmp("<x:xmpmeta xmlns:x='adobe:ns:meta/'><rdf:RDF"), "image/jpeg")
    assert f.evidence == [] and any("not well-formed" in n for n in f.notes)


def test_broken_comfyui_json_is_skipped_with_a_note():
    broken = json.dumps(comfy_graph())[:-40]
    f = analyze_metadata(png_text(prompt=broken), "image/png")
    assert f.evidence == []
    assert any("broken JSON" in n and "prompt" in n for n in f.notes)
    # A good workflow next to the broken prompt is still read.
    f = analyze_metadata(png_text(prompt=broken, workflow=json.dumps(comfy_workflow())), "image/png")
    assert only(f, "png:comfyui").details["seed"] == 156680208700286
    assert any("broken JSON" in n for n in f.notes)


def test_deeply_nested_json_is_a_note():
    f = analyze_metadata(png_text(prompt="[" * 100_000 + "]" * 100_000), "image/png")
    assert f.evidence == [] and f.notes


def test_truncated_png_chunk_is_skipped_with_a_note():
    good = png_text(parameters=INFOTEXT.format(version="v1.10.1"))
    cut = good.index(b"tEXtparameters") + 60
    f = analyze_metadata(good[:cut], "image/png")
    assert f.evidence == []
    assert any("truncated" in n and "tEXt" in n for n in f.notes)


def test_png_chunk_with_bad_crc_is_skipped():
    body = b"parameters\x00" + INFOTEXT.format(version="v1.10.1").encode()
    chunk = bytearray(png_chunk(b"tEXt", body))
    chunk[-1] ^= 0xFF
    f = analyze_metadata(png_with_chunks([bytes(chunk)]), "image/png")
    assert f.evidence == [] and any("bad CRC" in n for n in f.notes)


def test_ztxt_decompression_bomb_is_bounded():
    bomb = zlib.compress(b"A" * (64 * 1024 * 1024), 9)  # 64 MiB of text in ~64 KB
    chunk = png_chunk(b"zTXt", b"parameters\x00\x00" + bomb)
    itxt = png_chunk(b"iTXt", b"workflow\x00\x01\x00\x00\x00" + bomb)
    started = time.perf_counter()
    f = analyze_metadata(png_with_chunks([chunk, itxt]), "image/png")
    assert time.perf_counter() - started < 2
    assert f.evidence == []
    assert sum("decompression bomb" in n for n in f.notes) == 2


def test_corrupt_exif_is_a_note():
    block = tiff_exif({0x0131: "AI generated;txt2img;flux"})
    f = analyze_metadata(jpeg_exif(block[:12]), "image/jpeg")
    assert f.evidence == [] and any("EXIF" in n for n in f.notes)
    f = analyze_metadata(jpeg_exif(b"garbage that is not TIFF"), "image/jpeg")
    assert f.evidence == [] and any("TIFF header" in n for n in f.notes)


def test_truncated_jpeg_segment_is_a_note():
    data = jpeg_exif(tiff_exif({0x0131: "AI generated;txt2img;flux"}))
    f = analyze_metadata(data[:30], "image/jpeg")
    assert f.evidence == [] and any("truncated segment" in n for n in f.notes)


def test_prompts_are_bounded():
    long_prompt = "a lighthouse at dusk, " * 2000
    text = f"{long_prompt}\nSteps: 20, Sampler: Euler, Seed: 1, Model: m"
    d = only(analyze_metadata(png_text(parameters=text), "image/png"), "png:a1111").details
    assert len(d["prompt"]) <= 4001 and d["prompt"].endswith("…")


def test_garbage_and_limits_never_raise():
    assert analyze_metadata(b"", "image/png").evidence == []
    f = analyze_metadata(b"not an image at all", "application/octet-stream")
    assert f.evidence == [] and f.notes
    f = analyze_metadata(encode(scene(64, 48), "PNG"), "image/png", limits=MediaLimits(max_bytes=100))
    assert f.evidence == [] and any("over the limit" in n for n in f.notes)
    rng = np.random.default_rng(7)
    for prefix in (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00"):
        for _ in range(30):
            blob = prefix + rng.integers(0, 256, int(rng.integers(0, 400)), dtype=np.uint8).tobytes()
            assert isinstance(analyze_metadata(blob, "image/jpeg"), Findings)


def test_heif_exif_and_xmp_through_pillow():
    import consentry.media.image  # noqa: F401 - registers the HEIF opener

    block = tiff_exif({0x0131: "AI generated;txt2img;flux", 0x010F: "Black Forest Labs", 0x0110: "flux-dev", 0x010E: PROMPT})
    packet = xmp_packet(f'Iptc4xmpExt:DigitalSourceType="{DST}trainedAlgorithmicMedia"').encode()
    data = encode(scene(64, 48), "HEIF", exif=b"Exif\x00\x00" + block, xmp=packet)
    f = analyze_metadata(data, "image/heic")
    assert (only(f, "exif:flux").details["prompt"], only(f, "xmp:iptc").claim) == (PROMPT, "ai_generated")


def _area_graph(n_areas: int) -> dict:
    """ComfyUI area conditioning: n positive prompts, each on an area, combined pairwise."""
    g = {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": NEGATIVE, "clip": ["4", 1]}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": 1}},
    }
    combined = None
    for i in range(n_areas):
        g[f"t{i}"] = {"class_type": "CLIPTextEncode", "inputs": {"text": f"area {i}: a lighthouse on a rock",
                                                                  "clip": ["4", 1]}}
        g[f"a{i}"] = {"class_type": "ConditioningSetArea", "inputs": {
            "conditioning": [f"t{i}", 0], "width": 32, "height": 48, "x": 32 * i, "y": 0, "strength": 1.0}}
        if combined is None:
            combined = [f"a{i}", 0]
        else:
            g[f"c{i}"] = {"class_type": "ConditioningCombine",
                          "inputs": {"conditioning_1": combined, "conditioning_2": [f"a{i}", 0]}}
            combined = [f"c{i}", 0]
    g["3"] = {"class_type": "KSampler", "inputs": {
        "seed": 42, "steps": 20, "cfg": 7, "sampler_name": "euler", "scheduler": "normal", "denoise": 1,
        "model": ["4", 0], "positive": combined, "negative": ["7", 0], "latent_image": ["5", 0]}}
    return g


def test_comfyui_area_conditioning_reports_every_positive_prompt():
    ev = only(analyze_metadata(png_text(prompt=json.dumps(_area_graph(3))), "image/png"), "png:comfyui")
    d = ev.details
    assert d["prompts"] == [f"area {i}: a lighthouse on a rock" for i in range(3)]
    assert d["prompt_count"] == 3 and "prompts_left_out" not in d
    assert d["prompt"] == "area 0: a lighthouse on a rock"
    assert d["negative_prompt"] == NEGATIVE and NEGATIVE not in d["prompts"]


def test_comfyui_many_positive_prompts_say_how_many_were_left_out():
    from consentry.evidence.metadata.comfyui import MAX_PROMPTS

    ev = only(analyze_metadata(png_text(prompt=json.dumps(_area_graph(MAX_PROMPTS + 3))), "image/png"), "png:comfyui")
    assert len(ev.details["prompts"]) == MAX_PROMPTS
    assert ev.details["prompt_count"] == MAX_PROMPTS + 3 and ev.details["prompts_left_out"] == 3


def test_comfyui_single_prompt_has_no_prompt_list():
    ev = only(analyze_metadata(png_text(prompt=json.dumps(comfy_graph())), "image/png"), "png:comfyui")
    assert "prompts" not in ev.details and ev.details["prompt"] == PROMPT


def test_alpha_header_check_never_skips_a_picture_that_has_alpha():
    """The stealth reader opens a PNG/WebP a second time only when its header may hold an alpha
    band; every mode and encoding where Pillow opens an alpha band must say 'may have alpha'."""
    import io as _io

    import numpy as _np
    from PIL import Image as _Image

    from consentry.evidence.metadata import novelai
    from consentry.evidence.metadata.analyze import _may_have_alpha

    rng = _np.random.default_rng(1)
    rgba = _Image.fromarray(rng.integers(0, 255, (40, 50, 4), dtype=_np.uint8), "RGBA")
    skipped = 0
    for mode in ("RGB", "RGBA", "L", "LA", "P", "1"):
        encodings = [("PNG", {})] + ([("WEBP", {"quality": 80}), ("WEBP", {"lossless": True})]
                                     if mode in ("RGB", "RGBA") else [])
        for fmt, kw in encodings:
            buf = _io.BytesIO()
            rgba.convert(mode).save(buf, fmt, **kw)
            data = buf.getvalue()
            with _Image.open(_io.BytesIO(data)) as opened:
                if novelai.has_alpha(opened):
                    assert _may_have_alpha(data), (mode, fmt, kw)
                else:
                    skipped += not _may_have_alpha(data)
    assert skipped >= 5  # RGB/L/1 PNG, lossy and lossless RGB WebP: no second open
    assert _may_have_alpha(b"not a picture at all")  # unknown: open and see
