"""Shared fixtures: small generated samples, cached per test session."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real LHE files beside the repository (skips when absent)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real generator files not found at {SHARED_DATA}")
    return SHARED_DATA
