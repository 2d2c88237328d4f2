"""Many samples in one deposited h5ad: the sheet's obs_column/obs_value (issue 13, item 5)."""

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow.core import _config as tmc
from tmeflow.core._errors import InputError
from tmeflow.inputs import _ingest as ingest
from tmeflow.inputs import _sample_sheet as tms
from tmeflow.inputs._read_counts import read_counts

REPO = Path(__file__).resolve().parents[3]
SAMPLES_SCHEMA = REPO / "workflow/schemas/samples.schema.yaml"
CONTRAST = {"column": "condition", "reference": "control", "test": "treated"}
COLUMNS = ("sample", "condition", "path", "obs_column", "obs_value")


def deposit(path: Path, *, layer: bool = False) -> ad.AnnData:
    """Six cells of two libraries whose bare barcodes repeat across the libraries."""
    counts = np.arange(6 * 4, dtype=np.float32).reshape(6, 4) % 7
    obs = pd.DataFrame(
        {
            "library": pd.Categorical(["L1", "L1", "L2", "L2", "L2", "L1"]),
            "animal": ["m1", "m1", "m2", "m2", "m2", "m1"],
            "batch": [1, 1, 2, 2, 2, 1],
            "tissue": ["lung"] * 6,
        },
        index=["AAAC", "AAAG", "AAAC", "AAAT", "AAAG", "CCCC"],
    )
    var = pd.DataFrame(index=["Gas6", "Mmp11", "Axl", "Cd3e"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # non-unique obs_names, as in such deposits
        if layer:
            a = ad.AnnData(X=sp.csr_matrix(np.log1p(counts)), obs=obs, var=var)
            a.layers["counts"] = sp.csr_matrix(counts)
        else:
            a = ad.AnnData(X=sp.csr_matrix(counts), obs=obs, var=var)
        a.write_h5ad(path)
    return a


def validate(rows, tmp_path, columns=COLUMNS):
    df = pd.DataFrame(rows, columns=list(columns))
    return tms.validate_sample_sheet(
        df, SAMPLES_SCHEMA, contrast=CONTRAST, base_dir=tmp_path, sheet_path="s.tsv"
    )


@pytest.fixture()
def dep(tmp_path):
    deposit(tmp_path / "all.h5ad")
    return tmp_path


def test_split_rows_accepted_and_not_metadata(dep):
    rows = [
        ("a", "control", "all.h5ad", "library", "L1"),
        ("b", "treated", "all.h5ad", "library", "L2"),
    ]
    s = validate(rows, dep)
    assert list(s.index) == ["a", "b"]
    assert tms.metadata_columns(s) == ["condition"]


def test_numeric_column_matches_as_text(dep):
    rows = [("a", "control", "all.h5ad", "batch", "1"), ("b", "treated", "all.h5ad", "batch", "2")]
    validate(rows, dep)


@pytest.mark.parametrize(
    ("column", "value", "missing"), [("library", "", "obs_value"), ("", "L1", "obs_column")]
)
def test_only_one_of_the_two_refused(dep, column, value, missing):
    rows = [("a", "control", "all.h5ad", column, value)]
    with pytest.raises(tmc.ConfigError, match=rf"sample 'a': column '\w+' is set but '{missing}'"):
        validate(rows, dep)


def test_missing_column_lists_the_available_ones(dep):
    rows = [("a", "control", "all.h5ad", "mouse", "m1")]
    with pytest.raises(tmc.ConfigError) as exc:
        validate(rows, dep)
    msg = str(exc.value)
    assert "sample 'a'" in msg and "'obs_column' is 'mouse'" in msg
    assert "['library', 'animal', 'batch', 'tissue']" in msg


def test_value_selecting_nothing_lists_the_values(dep):
    rows = [("a", "control", "all.h5ad", "library", "L3")]
    with pytest.raises(tmc.ConfigError) as exc:
        validate(rows, dep)
    msg = str(exc.value)
    assert "sample 'a'" in msg and "'obs_value' is 'L3'" in msg and "'L1', 'L2'" in msg


def test_same_selection_twice_refused(dep):
    rows = [
        ("a", "control", "all.h5ad", "library", "L1"),
        ("b", "treated", "all.h5ad", "library", "L1"),
    ]
    with pytest.raises(tmc.ConfigError, match=r"samples 'a' and 'b' both take .*'library' = 'L1'"):
        validate(rows, dep)


def test_whole_file_row_overlaps_its_splits(dep):
    rows = [("a", "control", "all.h5ad", "", ""), ("b", "treated", "all.h5ad", "library", "L2")]
    with pytest.raises(tmc.ConfigError, match=r"sample 'a' takes the whole .*\['b'\]"):
        validate(rows, dep)


def test_selections_of_two_columns_that_meet_refused(dep):
    rows = [
        ("a", "control", "all.h5ad", "library", "L1"),
        ("b", "treated", "all.h5ad", "animal", "m1"),
    ]
    with pytest.raises(tmc.ConfigError, match=r"'a' \(library = 'L1'\) and 'b' .* share 3 cell"):
        validate(rows, dep)


@pytest.mark.parametrize(
    ("name", "fmt", "shown"),
    [("a.h5", "", "a 10x_h5 input"), ("m", "", "a 10x_mtx input"), ("x.h5ad", "table", "table")],
)
def test_split_of_an_input_without_obs_refused(tmp_path, name, fmt, shown):
    p = tmp_path / name
    if name == "m":
        p.mkdir()
        for f in ("matrix.mtx", "features.tsv", "barcodes.tsv"):
            (p / f).write_text("")
    else:
        p.write_bytes(b"x")
    rows = [("a", "control", name, "library", "L1", fmt)]
    with pytest.raises(tmc.ConfigError) as exc:
        validate(rows, tmp_path, columns=(*COLUMNS, "format"))
    msg = str(exc.value)
    assert "sample 'a'" in msg and "'obs_column'" in msg and shown in msg
    assert "clear obs_column/obs_value" in msg


def test_url_split_checked_at_ingest_only():
    df = pd.DataFrame(
        [("a", "control", "https://x.org/all.h5ad", "library", "L1")], columns=list(COLUMNS)
    )
    tms.check_obs_splits(df)  # no download at parse time
    df.loc[0, "path"] = "https://x.org/all.h5"
    with pytest.raises(tmc.ConfigError, match="not an h5ad"):
        tms.check_obs_splits(df)


@pytest.mark.parametrize("layer", [False, True])
def test_split_gives_exactly_the_right_cells(tmp_path, layer):
    src = deposit(tmp_path / "all.h5ad", layer=layer)
    counts = src.layers["counts"] if layer else src.X
    got = {}
    for sample, lib in (("a", "L1"), ("b", "L2")):
        a = ingest.ingest_sample(
            tmp_path / "all.h5ad",
            sample=sample,
            condition="control",
            obs_column="library",
            obs_value=lib,
        )
        rows = np.flatnonzero(src.obs["library"].to_numpy() == lib)
        assert a.n_obs == len(rows) == 3
        np.testing.assert_array_equal(a.X.toarray(), counts[rows].toarray())
        assert list(a.obs["barcode"]) == list(src.obs_names[rows])
        assert (a.obs["library"] == lib).all() and (a.obs["sample"] == sample).all()
        assert a.uns["ingest"]["obs_column"] == "library"
        assert a.uns["ingest"]["obs_value"] == lib
        report = ingest.ingest_report(a)
        assert (report["obs_column"], report["obs_value"], report["n_cells"]) == ("library", lib, 3)
        assert not report["cells_called"]
        got[sample] = a
    names = got["a"].obs_names.append(got["b"].obs_names)
    assert names.is_unique  # "AAAC" is in both libraries; the sample prefix keeps them apart


def test_repeated_barcodes_within_a_split_made_unique(tmp_path):
    src = deposit(tmp_path / "all.h5ad")
    a = read_counts(tmp_path / "all.h5ad", sample="m", obs_column="tissue", obs_value="lung")
    assert list(a.obs_names) == ["AAAC", "AAAG", "AAAC-1", "AAAT", "AAAG-1", "CCCC"]
    np.testing.assert_array_equal(a.X.toarray(), src.X.toarray())
    b = read_counts(tmp_path / "all.h5ad", sample="m", obs_column="library", obs_value="L2")
    np.testing.assert_array_equal(b.X.toarray(), src.X[[2, 3, 4]].toarray())
    all_l1 = read_counts(tmp_path / "all.h5ad", sample="m", obs_column="animal", obs_value="m1")
    assert list(all_l1.obs_names) == ["AAAC", "AAAG", "CCCC"]


def test_whole_file_report_has_empty_split_columns(tmp_path):
    ad.AnnData(X=sp.csr_matrix(np.ones((3, 2), dtype=np.float32))).write_h5ad(tmp_path / "1.h5ad")
    b = ingest.ingest_sample(tmp_path / "1.h5ad", sample="s", condition="control")
    assert "obs_column" not in b.uns["ingest"]
    report = ingest.ingest_report(b)
    assert (report["obs_column"], report["obs_value"]) == ("", "")


@pytest.mark.parametrize(
    ("column", "value", "problem"),
    [
        (
            "mouse",
            "m1",
            r"obs_column 'mouse' is not a column.*Set obs_column to one of \['library'",
        ),
        ("library", "L9", r"obs_value 'L9' selects no cell.*Set obs_value to one of 'L1', 'L2'"),
    ],
)
def test_ingest_names_sample_column_and_fix(tmp_path, column, value, problem):
    deposit(tmp_path / "all.h5ad")  # as after a download: parse time did not see the file
    with pytest.raises(InputError, match=rf"sample 'a': {problem}"):
        ingest.ingest_sample(
            tmp_path / "all.h5ad",
            sample="a",
            condition="control",
            obs_column=column,
            obs_value=value,
        )


def test_ingest_refuses_a_split_of_a_10x_input(tmp_path):
    from .._inputs import BARCODES, COUNTS, IDS, NAMES, write_cr3_h5

    write_cr3_h5(
        tmp_path / "x.h5", COUNTS, BARCODES, IDS, NAMES, ["Gene Expression"] * 5, ["mm10"] * 5
    )
    with pytest.raises(InputError, match="needs cell metadata, but the input is 10x_h5"):
        read_counts(tmp_path / "x.h5", sample="a", obs_column="library", obs_value="L1")


def test_zilionis_split_by_animal(shared_data, tmp_path):
    path = shared_data / "zilionis_lung_cd45" / "zilionis_lung_cd45_800.h5ad"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    animals = {"h_1": "control", "h_2": "control", "t_1": "treated", "t_2": "treated"}
    rows = [(f"m_{k}", c, str(path), "animal", k) for k, c in animals.items()]
    sheet = validate(rows, tmp_path)
    src = ad.read_h5ad(path)
    expected = src.obs["animal"].astype(str).value_counts()
    total, names = 0, []
    for sample, row in sheet.iterrows():
        a = ingest.ingest_sample(
            path,
            sample=sample,
            condition=row["condition"],
            obs_column="animal",
            obs_value=row["obs_value"],
        )
        assert a.n_obs == expected[row["obs_value"]]
        rows_ = np.flatnonzero(src.obs["animal"].astype(str).to_numpy() == row["obs_value"])
        assert (abs(a.X - src.X[rows_]).sum()) == 0  # the same counts, cell for cell
        assert a.obs["library"].astype(str).str.startswith(row["obs_value"]).all()
        total += a.n_obs
        names.extend(a.obs_names)
    assert total == src.n_obs == 800
    assert pd.Index(names).is_unique
