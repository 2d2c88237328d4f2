"""Shared fixtures: paths of the repository and of the real public data in ../shared/data."""

import os
from pathlib import Path

import pytest

from .paths import REPO, shared_data_dir

# Keep numerical libraries quiet in tests, and on one thread: the long workflow runs go on in
# the background meanwhile (tests/workflow/background.py), and BLAS/OpenMP threads spin-wait
# for each other on a shared core.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return shared_data_dir()
