"""One small demo run shared by every end-to-end test module (it takes minutes)."""

from pathlib import Path

import pytest

from .helpers import SMALL_DEMO, copy_workflow, snakemake, write_config


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """The whole workflow on the small demo, in a fresh copy of the repository."""
    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    cfg = write_config(work, SMALL_DEMO)
    snakemake(work, "--configfile", str(cfg))
    return work
