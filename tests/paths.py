"""Where the tests find the repository and the real public data (``../shared/data``)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data_dir() -> Path:
    """``../shared/data``; skips the calling test (or background run) when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public data not found at {SHARED_DATA} (../shared/data is absent)")
    return SHARED_DATA
