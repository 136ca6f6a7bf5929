"""Test-only embedder of the ``invisible-watermark`` ``dwtDct`` method (numpy + PyWavelets).

Written from ``imwatermark/maxDct.py`` (``EmbedMaxDct.encode``, ``scales=[0, 36, 36]``, ``block=4``)
and OpenCV's YUV conversions, step by step and independently of
:mod:`consentry.evidence.watermark` (its own colour conversion, a plain loop over blocks like the
reference), so that the decoder is checked against a second reading of the algorithm.

Two input paths, as the generators use the library:

* ``mode="uint8"``: CompVis / Stability SD 1.x-2.x scripts (``put_watermark``): 8-bit RGB → BGR,
  8-bit YUV (OpenCV fixed point), the marked U plane is written back into the uint8 array (numpy's
  float → uint8 cast truncates), 8-bit YUV → BGR.
* ``mode="float"``: SDXL (generative-models ``WatermarkEmbedder``, diffusers) and FLUX: a float32 BGR
  array in 0..255 goes through OpenCV's *float* YUV (whose U offset is 0.5, not 128), the result
  is clamped to 0..1 and quantised to 8 bits by truncation (``astype(uint8)``, torch ``byte()``:
  sgm, flux) or rounding (diffusers' ``numpy_to_pil``).
"""

from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pywt
from PIL import Image

SCALES = (0, 36, 36)  # Y, U, V; the reference loop only visits channels 0 and 1
BLOCK = 4

# OpenCV imgproc/src/color_yuv.simd.hpp, BT.601, yuv_shift = 14
SHIFT = 14
R2Y, G2Y, B2Y = 4899, 9617, 1868
B2UI, R2VI = 8061, 14369
U2BI, U2GI, V2GI, V2RI = 33292, -6472, -9519, 18678
B2UF, R2VF = 0.492, 0.877
U2BF, U2GF, V2GF, V2RF = 2.032, -0.395, -0.581, 1.140


def _descale(x: np.ndarray) -> np.ndarray:
    return (x + (1 << (SHIFT - 1))) >> SHIFT


def bgr2yuv_u8(bgr: np.ndarray) -> np.ndarray:
    b, g, r = (bgr[..., k].astype(np.int64) for k in range(3))
    y = _descale(b * B2Y + g * G2Y + r * R2Y)
    u = _descale((b - y) * B2UI + (128 << SHIFT))
    v = _descale((r - y) * R2VI + (128 << SHIFT))
    return np.clip(np.stack([y, u, v], axis=-1), 0, 255).astype(np.uint8)


def yuv2bgr_u8(yuv: np.ndarray) -> np.ndarray:
    y, u, v = (yuv[..., k].astype(np.int64) for k in range(3))
    b = y + _descale((u - 128) * U2BI)
    g = y + _descale((u - 128) * U2GI + (v - 128) * V2GI)
    r = y + _descale((v - 128) * V2RI)
    return np.clip(np.stack([b, g, r], axis=-1), 0, 255).astype(np.uint8)


def bgr2yuv_f32(bgr: np.ndarray) -> np.ndarray:
    bgr = bgr.astype(np.float32)
    b, g, r = bgr[..., 0], bgr[..., 1], bgr[..., 2]
    y = b * np.float32(0.114) + g * np.float32(0.587) + r * np.float32(0.299)
    u = (b - y) * np.float32(B2UF) + np.float32(0.5)
    v = (r - y) * np.float32(R2VF) + np.float32(0.5)
    return np.stack([y, u, v], axis=-1).astype(np.float32)


def yuv2bgr_f32(yuv: np.ndarray) -> np.ndarray:
    y, u, v = yuv[..., 0], yuv[..., 1] - np.float32(0.5), yuv[..., 2] - np.float32(0.5)
    b = y + u * np.float32(U2BF)
    g = y + u * np.float32(U2GF) + v * np.float32(V2GF)
    r = y + v * np.float32(V2RF)
    return np.stack([b, g, r], axis=-1).astype(np.float32)


def _encode_frame(frame: np.ndarray, bits: Sequence[int], scale: float) -> None:
    """``EmbedMaxDct.encode_frame`` + ``diffuse_dct_matrix``, in place, one block at a time."""
    rows, cols = frame.shape
    num = 0
    for i in range(rows // BLOCK):
        for j in range(cols // BLOCK):
            block = frame[i * BLOCK:(i + 1) * BLOCK, j * BLOCK:(j + 1) * BLOCK]  # a view
            bit = bits[num % len(bits)]
            pos = int(np.argmax(np.abs(block.flatten()[1:]))) + 1
            bi, bj = pos // BLOCK, pos % BLOCK
            val = block[bi][bj]
            if val >= 0.0:
                block[bi][bj] = (val // scale + 0.25 + 0.5 * bit) * scale
            else:
                block[bi][bj] = -1.0 * (abs(val) // scale + 0.25 + 0.5 * bit) * scale
            num += 1


def _encode_frame_fast(frame: np.ndarray, bits: Sequence[int], scale: float) -> None:
    """The same as :func:`_encode_frame`, all blocks at once (tests check they agree)."""
    rows, cols = frame.shape
    br, bc = rows // BLOCK, cols // BLOCK
    if br == 0 or bc == 0:
        return
    view = frame[: br * BLOCK, : bc * BLOCK].reshape(br, BLOCK, bc, BLOCK).transpose(0, 2, 1, 3)
    blocks = view.reshape(br * bc, BLOCK * BLOCK).copy()
    bit = np.asarray(bits, dtype=np.float64)[np.arange(br * bc) % len(bits)]
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1
    idx = np.arange(br * bc)
    val = blocks[idx, pos].astype(np.float64)
    mag = (np.floor_divide(np.abs(val), scale) + 0.25 + 0.5 * bit) * scale
    blocks[idx, pos] = np.where(val >= 0.0, mag, -1.0 * mag)
    view[...] = blocks.reshape(br, bc, BLOCK, BLOCK)


def _mark_yuv(yuv: np.ndarray, bits: Sequence[int], fast: bool = True) -> None:
    rows, cols = yuv.shape[:2]
    r4, c4 = rows // 4 * 4, cols // 4 * 4
    for channel in range(2):  # sic: the reference never reaches channel 2 (V)
        if SCALES[channel] <= 0:
            continue
        ca, (h, v, d) = pywt.dwt2(yuv[:r4, :c4, channel], "haar")
        (_encode_frame_fast if fast else _encode_frame)(ca, bits, SCALES[channel])
        with warnings.catch_warnings():  # out-of-range float -> uint8 casts, as in the reference
            warnings.simplefilter("ignore", RuntimeWarning)
            yuv[:r4, :c4, channel] = pywt.idwt2((ca, (v, h, d)), "haar")  # sic: H and V swapped


def embed_dwtdct(image: Image.Image, bits: Sequence[int], *, mode: str = "uint8",
                 rounding: str = "floor", fast: bool = True) -> Image.Image:
    """Return ``image`` (RGB) with ``bits`` embedded as ``WatermarkEncoder().encode(.., 'dwtDct')``."""
    bits = [int(b) % 2 for b in bits]
    rgb = np.asarray(image.convert("RGB"), dtype=np.uint8)
    rows, cols = rgb.shape[:2]
    if rows * cols < 256 * 256:
        raise RuntimeError("image too small, should be larger than 256x256")
    bgr = rgb[:, :, ::-1]
    if mode == "uint8":
        yuv = bgr2yuv_u8(bgr)
        _mark_yuv(yuv, bits, fast)
        out = yuv2bgr_u8(yuv)[:, :, ::-1]
    elif mode == "float":
        yuv = bgr2yuv_f32(bgr.astype(np.float32))
        _mark_yuv(yuv, bits, fast)
        unit = np.clip(yuv2bgr_f32(yuv)[:, :, ::-1] / np.float32(255), 0.0, 1.0) * 255
        if rounding == "floor":
            out = unit.astype(np.uint8)
        elif rounding == "round":
            out = np.round(unit).astype(np.uint8)
        else:
            raise ValueError(rounding)
    else:
        raise ValueError(mode)
    return Image.fromarray(np.ascontiguousarray(out), "RGB")


def bits_from_bytes(data: bytes) -> list[int]:
    """``WatermarkEncoder.set_by_bytes``: ``np.unpackbits`` (most significant bit first)."""
    return [int(b) for b in np.unpackbits(np.frombuffer(data, dtype=np.uint8))]


def bits_from_message(message: int) -> list[int]:
    """``[int(bit) for bit in bin(WATERMARK_MESSAGE)[2:]]`` as the SDXL and FLUX code write it."""
    return [int(bit) for bit in bin(message)[2:]]
