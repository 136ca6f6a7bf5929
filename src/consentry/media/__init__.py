"""Safe loading of untrusted media: sniffing, decoding with limits, frame sampling."""

from consentry.media.content import Content
from consentry.media.image import load_image, to_rgb
from consentry.media.sniff import PHOTO, UNKNOWN, VIDEO, Sniffed, sniff
from consentry.media.video import VideoFrame, VideoInfo, iter_frames, probe_video

__all__ = [
    "Content", "load_image", "to_rgb", "sniff", "Sniffed", "PHOTO", "VIDEO", "UNKNOWN",
    "VideoFrame", "VideoInfo", "iter_frames", "probe_video",
]
