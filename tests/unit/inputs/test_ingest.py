"""Unit tests for tmeflow.inputs._ingest: one sample read, its cells annotated, the ingest
report."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tmeflow.core._errors import InputError
from tmeflow.inputs import _ingest as ingest

from .._inputs import BARCODES, COUNTS, IDS, NAMES, v3_features, write_cr3_h5, write_mtx


def test_zero_cells_rejected(tmp_path: Path) -> None:
    d = write_mtx(
        tmp_path / "empty",
        np.zeros((0, 5), dtype=int),
        [],
        v3_features(),
        gz=False,
        features_name="features.tsv",
    )
    (d / "barcodes.tsv").write_text("")
    with pytest.raises(InputError, match=r"sample 'e1': zero cells"):
        ingest.ingest_sample(d, sample="e1", condition="ctrl")


def test_ingest_sample_obs(tmp_path: Path) -> None:
    p = tmp_path / "cr3.h5"
    write_cr3_h5(p, COUNTS, BARCODES, IDS, NAMES, ["Gene Expression"] * 5, ["mm10"] * 5)
    a = ingest.ingest_sample(
        p, sample="tum1", condition="treated", extra={"animal": "m3", "batch": 2, "sample": "tum1"}
    )
    assert list(a.obs_names) == [f"tum1_{b}" for b in BARCODES]
    assert list(a.obs["barcode"]) == BARCODES
    assert set(a.obs["sample"]) == {"tum1"}
    assert set(a.obs["condition"]) == {"treated"}
    assert set(a.obs["animal"]) == {"m3"} and set(a.obs["batch"]) == {2}
    assert a.uns["ingest"]["format"] == "10x_h5"
    with pytest.raises(InputError, match="barcode"):
        ingest.ingest_sample(p, sample="tum1", condition="treated", extra={"barcode": "x"})


def test_ingest_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError) as exc:
        ingest.ingest_sample(tmp_path / "absent.h5", sample="s9", condition="ctrl")
    msg = str(exc.value)
    assert "s9" in msg and "absent.h5" in msg and "sample sheet" in msg


def test_format_column_overrides_detection(tmp_path: Path) -> None:
    p = tmp_path / "counts.dat"  # an extension detection does not know
    pd.DataFrame(COUNTS.T, index=[*NAMES[:2], "Xkr4", "Mmp11", "Col1a1"], columns=BARCODES).to_csv(
        p, sep="\t"
    )
    with pytest.raises(InputError, match="unrecognised count format"):
        ingest.ingest_sample(p, sample="s1", condition="c")
    a = ingest.ingest_sample(p, sample="s1", condition="c", fmt="table")
    assert a.shape == (4, 5)
    assert a.uns["ingest"]["orientation"] == {
        "read_as": "genes x cells",
        "why": "column labels look like barcodes",
    }
    assert ingest.ingest_report(a)["orientation"] == "genes x cells"


def test_reference_symbols_order_and_laziness(tmp_path: Path) -> None:
    from tmeflow.core import _genesets as genesets

    root = Path(__file__).resolve().parents[3] / "config"
    panel = root / "markers" / "mouse_tme.yaml"
    gmt = tmp_path / "sets.gmt"
    gmt.write_text("SET_A\tdesc\tGas6\tH2-Ab1\nSET_B\tdesc\tLy6c2\n")
    refs = ingest.reference_symbols([panel], [gmt], ["Axl", "Mertk"])
    expected = ["Axl", "Mertk"]
    for markers in genesets.marker_sets(panel).values():
        expected += markers
    expected += ["Gas6", "H2-Ab1", "Ly6c2"]
    assert list(refs) == expected
    # lazy: a missing file is only an error once the symbols are needed
    missing = ingest.reference_symbols([], [tmp_path / "missing.gmt"], ["Axl"])
    assert next(missing) == "Axl"
    with pytest.raises(FileNotFoundError):
        list(missing)


def test_symbol_reference_only_for_mouse_auto(tmp_path: Path) -> None:
    gmt = tmp_path / "sets.gmt"
    gmt.write_text("SET_A\tdesc\tGas6\n")
    assert list(ingest.symbol_reference("mouse", "auto", [], [gmt], ["Axl"])) == ["Axl", "Gas6"]
    assert ingest.symbol_reference("mouse", "keep", [], [gmt], ["Axl"]) == ()
    assert ingest.symbol_reference("human", "auto", [], [gmt], ["Axl"]) == ()
