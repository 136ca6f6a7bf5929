"""Generator and provenance markers in an image's own metadata (DESIGN.md section 7).

EXIF, XMP (IPTC Digital Source Type and AI fields, China's TC260 AIGC label, Draw Things,
Midjourney), PNG text chunks (AUTOMATIC1111/Forge/SD.Next, ComfyUI, NovelAI, InvokeAI, Fooocus,
SwarmUI) and NovelAI's alpha-channel "stealth" copy.  See ``docs/evidence-metadata.md``.
"""

from consentry.evidence.metadata.analyze import analyze_metadata

__all__ = ["analyze_metadata"]
