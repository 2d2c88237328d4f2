"""Unit tests for tmeflow.inputs._formats: telling the format of a count input."""

from pathlib import Path

import pytest

from tmeflow.core._errors import InputError
from tmeflow.inputs import _formats as formats

from .._inputs import BARCODES, COUNTS, IDS, NAMES, v3_features, write_mtx


def test_detect_format_each_kind(tmp_path: Path) -> None:
    write_mtx(
        tmp_path / "v2",
        COUNTS,
        BARCODES,
        [[i, n] for i, n in zip(IDS, NAMES, strict=True)],
        gz=False,
        features_name="genes.tsv",
    )
    write_mtx(
        tmp_path / "v3", COUNTS, BARCODES, v3_features(), gz=True, features_name="features.tsv"
    )
    for name in ("a.h5", "a.h5ad", "a.csv", "a.tsv.gz", "a.txt", "a.loom"):
        (tmp_path / name).write_bytes(b"x")
    assert formats.detect_format(tmp_path / "v2") == "10x_mtx"
    assert formats.detect_format(tmp_path / "v3") == "10x_mtx"
    assert formats.detect_format(tmp_path / "v3" / "matrix.mtx.gz") == "10x_mtx"
    assert formats.detect_format(tmp_path / "a.h5") == "10x_h5"
    assert formats.detect_format(tmp_path / "a.h5ad") == "h5ad"
    assert formats.detect_format(tmp_path / "a.csv") == "table"
    assert formats.detect_format(tmp_path / "a.tsv.gz") == "table"
    assert formats.detect_format(tmp_path / "a.txt") == "table"
    with pytest.raises(InputError, match="unrecognised count format"):
        formats.detect_format(tmp_path / "a.loom", sample="s1")
    with pytest.raises(InputError, match="not a 10x mtx folder"):
        formats.detect_format(tmp_path, sample="s1")
    with pytest.raises(InputError, match=r"sample 's1': file not found"):
        formats.detect_format(tmp_path / "nope.h5", sample="s1")
