"""Probe and sample untrusted video with PyAV, inside duration, frame and pixel limits."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import av
from PIL import Image

from consentry.config import MediaLimits
from consentry.errors import CorruptMedia, MediaTooLarge, UnsupportedMedia
from consentry.media import guard


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    fps: float
    duration: float  # seconds
    frames: int  # known or estimated frame count
    codec: str
    container: str


@dataclass(frozen=True)
class VideoFrame:
    index: int  # frame number in decode order (0-based)
    timestamp: float  # seconds from the start
    image: Image.Image  # RGB


def _open(path: str | Path):
    try:
        return av.open(str(path), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise CorruptMedia(f"cannot read video: {_short(exc)}") from exc
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CorruptMedia(f"cannot read video: {_short(exc)}") from exc


def _info(container, stream) -> VideoInfo:
    ctx = stream.codec_context
    width, height = int(ctx.width or 0), int(ctx.height or 0)
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    fps = float(rate) if rate else 0.0
    duration = 0.0
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    if duration <= 0 and container.duration is not None:
        duration = container.duration / av.time_base
    frames = int(stream.frames or 0)
    if frames <= 0 and fps > 0 and duration > 0:
        frames = int(math.ceil(duration * fps))
    return VideoInfo(width, height, fps, duration, frames, ctx.name or "", container.format.name)


def check_limits(info: VideoInfo, limits: MediaLimits) -> None:
    if info.width <= 0 or info.height <= 0:
        raise CorruptMedia("video stream has no picture size")
    max_px = _frame_pixel_limit(limits)
    if info.width * info.height > max_px:
        raise MediaTooLarge(
            f"video frames are {info.width}x{info.height}, over the limit of {max_px} pixels a frame "
            "(CONSENTRY_MAX_VIDEO_PIXELS)"
        )
    if info.duration > limits.max_video_seconds:
        raise MediaTooLarge(
            f"video lasts {info.duration:.0f} s, over the limit of {limits.max_video_seconds:.0f} s"
        )
    if info.frames > limits.max_video_frames:
        raise MediaTooLarge(
            f"video has about {info.frames} frames, over the limit of {limits.max_video_frames}"
        )


def _frame_pixel_limit(limits: MediaLimits) -> int:
    video = getattr(limits, "max_video_pixels", 0) or limits.max_pixels
    return min(limits.max_pixels, video)


def probe_video(path: str | Path, limits: MediaLimits) -> VideoInfo:
    """Read the container header and check the limits; decode one frame to prove it decodes."""
    container = _open(path)
    try:
        if not container.streams.video:
            raise UnsupportedMedia("file has no video stream")
        stream = container.streams.video[0]
        info = _info(container, stream)
        check_limits(info, limits)
        try:
            with guard.decoding(limits):
                for _frame in container.decode(stream):
                    break
                else:
                    raise CorruptMedia("video has no decodable frames")
        except av.FFmpegError as exc:
            raise CorruptMedia(f"cannot decode video: {_short(exc)}") from exc
        return info
    finally:
        container.close()


def iter_frames(
    path: str | Path, limits: MediaLimits, seconds_per_frame: float | None = None
) -> Iterator[VideoFrame]:
    """Yield RGB frames sampled every ``seconds_per_frame`` (0 = every frame).

    The frame-count, duration and frame-size limits are enforced while decoding as well as from
    the header, so a file that lies about its length is still stopped; so is the decode deadline
    (``max_decode_seconds``, or the request's), checked at every frame.
    """
    step = limits.video_seconds_per_hash if seconds_per_frame is None else seconds_per_frame
    container = _open(path)
    try:
        if not container.streams.video:
            raise UnsupportedMedia("file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        info = _info(container, stream)
        check_limits(info, limits)
        max_px = _frame_pixel_limit(limits)
        next_t = 0.0
        decoded = 0
        start: float | None = None
        try:
            with guard.decoding(limits):
                for frame in container.decode(stream):
                    guard.check()  # the decode deadline, or the request's (504) deadline
                    decoded += 1
                    if decoded > limits.max_video_frames:
                        raise MediaTooLarge(
                            f"video has more than {limits.max_video_frames} frames"
                        )
                    if frame.width * frame.height > max_px:
                        raise MediaTooLarge("a video frame is over the pixel limit")
                    if frame.pts is not None and frame.time_base is not None:
                        t = float(frame.pts * frame.time_base)
                    elif info.fps > 0:
                        t = (decoded - 1) / info.fps
                    else:
                        t = float(decoded - 1)
                    if start is None:
                        start = t
                    t -= start
                    if t > limits.max_video_seconds:
                        raise MediaTooLarge(
                            f"video lasts over the limit of {limits.max_video_seconds:.0f} s"
                        )
                    if step <= 0 or t + 1e-6 >= next_t:
                        yield VideoFrame(decoded - 1, round(t, 3), frame.to_image())
                        if step > 0:
                            next_t = (math.floor(t / step + 1e-6) + 1) * step
        except av.FFmpegError as exc:
            raise CorruptMedia(f"cannot decode video: {_short(exc)}") from exc
    finally:
        container.close()


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:160]


__all__ = ["VideoInfo", "VideoFrame", "probe_video", "iter_frames", "check_limits"]
