from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TESTVECTORS = Path(os.environ.get("CONSENTRY_TESTVECTORS", REPO.parent / "shared" / "testvectors"))


@pytest.fixture(scope="session")
def testvectors() -> Path:
    if not (TESTVECTORS / "pdq").is_dir():
        pytest.fail(f"Meta test vectors not found at {TESTVECTORS} (set CONSENTRY_TESTVECTORS)")
    return TESTVECTORS


@pytest.fixture
def limits():
    from consentry.config import MediaLimits

    return MediaLimits()
