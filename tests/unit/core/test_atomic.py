"""The one atomic-write helper and its three users (h5ad, TSV, downloads)."""

import os
import stat
from pathlib import Path

import pandas as pd
import pytest

from tmeflow.core import _tables as tables
from tmeflow.core._atomic import atomic_path


def test_atomic_path_replaces_on_success_with_umask_mode(tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "out.txt"
    old = os.umask(0o022)
    try:
        with atomic_path(dest) as tmp:
            assert Path(tmp).parent == dest.parent and Path(tmp).exists()
            Path(tmp).write_text("done")
    finally:
        os.umask(old)
    assert dest.read_text() == "done"
    assert stat.S_IMODE(dest.stat().st_mode) == 0o644
    assert sorted(p.name for p in dest.parent.iterdir()) == ["out.txt"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    dest = tmp_path / "out.txt"
    dest.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(dest) as tmp:
        Path(tmp).write_text("half")
        raise RuntimeError("interrupted")
    assert dest.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_write_tsv_output_has_umask_mode(tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        tables.write_tsv(pd.DataFrame({"a": [1]}), tmp_path / "t.tsv")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "t.tsv").stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["t.tsv"]
