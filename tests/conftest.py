"""Fixtures shared by the test suite."""

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real datasets, ``../shared/data`` beside the repository.

    Tests using it are skipped when the folder is absent, and fail instead when ``CI=true``.
    """
    if not SHARED_DATA.is_dir():
        reason = f"shared real data not found at {SHARED_DATA}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return SHARED_DATA
