"""The evidence report: verdict labels in proper case ("AI-generated", never "Ai-generated") and a
PDF whose first page is not left mostly empty. Fixtures: Meta/Adobe provenance samples (a cat
picture and a car photo) and pictures drawn by ``imagegen``."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
from pathlib import Path

import pytest

from consentry.evidence.assess import VERDICT_LABELS, VERDICT_WORDS, assess_bytes, assess_path
from consentry.evidence.report import render_html, write_report
from imagegen import encode, scene

FIXTURES = Path(os.environ.get("CONSENTRY_FIXTURES", Path(__file__).resolve().parents[2] / "shared" / "fixtures"))
FIREFLY = FIXTURES / "provenance" / "Firefly_tabby_cat.jpg"
PHOTOSHOP = FIXTURES / "provenance" / "car-es-Ps-Cr.jpg"

EXPECTED = {
    "ai_generated": "AI-generated",
    "ai_edited": "Edited with AI",
    "edited_no_ai_indicated": "Edited, with no indication of AI",
    "no_indicators_found": "No indicators found",
    "inconclusive": "Inconclusive",
}


def _verdict_box(html: str) -> str:
    return re.search(r'<div class="verdict [a-z_]+" id="verdict">([^<]*)</div>', html).group(1)


def test_every_verdict_has_a_proper_label_in_the_report():
    assert set(VERDICT_LABELS) == set(VERDICT_WORDS) == set(EXPECTED)
    base = assess_bytes(encode(scene(200, 160, seed=5), "PNG"))
    for verdict, label in EXPECTED.items():
        html = render_html(dataclasses.replace(base, verdict=verdict))
        assert _verdict_box(html) == label
        assert "Ai-" not in html and "Ai " not in html and " ai" not in _verdict_box(html)


def test_summaries_keep_ai_upper_case():
    a = assess_path(FIREFLY)
    assert a.verdict == "ai_generated" and a.summary.startswith("AI-generated: ")
    html = render_html(a)
    assert "Ai-generated" not in html and _verdict_box(html) == "AI-generated"
    b = assess_path(PHOTOSHOP)
    assert _verdict_box(render_html(b)) == "Edited, with no indication of AI"


def _page_text(pdf: Path, page: int) -> str:
    return subprocess.run(["pdftotext", "-f", str(page), "-l", str(page), "-layout", str(pdf), "-"],
                          capture_output=True, text=True, check=True, timeout=120).stdout


@pytest.mark.parametrize("source", [FIREFLY, PHOTOSHOP], ids=["firefly", "photoshop"])
def test_pdf_page_one_holds_the_file_facts_verdict_and_start_of_the_evidence(source, tmp_path):
    a = assess_path(source)
    assert a.evidence
    out = write_report(a, tmp_path / "report.pdf", source=source)
    first = _page_text(out, 1)
    # the facts sit beside the thumbnail (not pushed below it) and the evidence starts on page 1
    assert "SHA-256" in first and a.sha256[:16] in first
    assert f"Evidence ({len(a.evidence)})" in first
    assert a.evidence[0].summary.split()[0] in first.split("Evidence (")[1]
    subprocess.run(["pdftoppm", "-png", "-r", "50", "-f", "1", "-l", "1", str(out), str(tmp_path / "page")],
                   check=True, timeout=120)
    from PIL import Image

    (png,) = tmp_path.glob("page*.png")
    img = Image.open(png).convert("L")
    w, h = img.size
    lower = img.crop((0, int(h * 0.6), w, int(h * 0.92)))  # above the bottom margin
    assert lower.getextrema()[0] < 128, "the lower part of page 1 is empty"
    print(f"\npage 1 of the PDF report: {png}")
