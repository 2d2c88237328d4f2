"""The sample sheet written from a GEO filelist.txt (stored by hand in tests/data), offline."""

import gzip
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.unit.inputs.test_geo_tar import add_file, counts, dense
from tmeflow.inputs import _geo_sheet as gs
from tmeflow.inputs import _ingest as ingest
from tmeflow.inputs import _sample_sheet as tms
from tmeflow.simulate.tenx import write_10x_h5, write_10x_mtx

REPO = Path(__file__).resolve().parents[3]
FILELIST = REPO / "tests/data/GSE999001_filelist.txt"
SAMPLES_SCHEMA = REPO / "workflow/schemas/samples.schema.yaml"
CONTRAST = {"column": "condition", "reference": "control", "test": "treated"}
CONDITIONS = ["--condition", "ctrl=control", "--condition", "gas6ko=treated"]


def test_read_filelist() -> None:
    archive, names = gs.read_filelist(FILELIST.read_text())
    assert archive == "GSE999001_RAW.tar"
    assert len(names) == 9 and names[0] == "GSM4811001_ctrl_m1_barcodes.tsv.gz"
    with pytest.raises(ValueError, match="not a GEO filelist"):
        gs.read_filelist("a\tb\n1\t2\n")


def test_sheet_rows_one_per_input() -> None:
    _, names = gs.read_filelist(FILELIST.read_text())
    sheet = gs.sheet_from_filelist(
        names, tar="r/GSE999001_RAW.tar", conditions=[("ctrl", "control"), ("KO", "treated")]
    )
    assert sheet.to_dict("list") == {
        "sample": ["ctrl_m1", "ctrl_m2", "Gas6KO_m3", "Gas6KO_m4"],
        "condition": ["control", "control", "treated", "treated"],
        "path": ["r/GSE999001_RAW.tar"] * 4,
        "member": ["GSM4811001", "GSM4811002", "GSM4811003", "GSM4811004"],
        "geo_accession": ["GSM4811001", "GSM4811002", "GSM4811003", "GSM4811004"],
    }


def test_shared_accession_and_clashing_titles_use_the_key() -> None:
    sheet = gs.sheet_from_filelist(
        ["GSM1_a.h5", "GSM1_b.h5", "GSM2_x.h5", "GSM3_x.h5", "counts.csv"], tar="t.tar"
    )
    assert list(sheet["member"]) == ["GSM1_a.h5", "GSM1_b.h5", "GSM2", "GSM3", "counts.csv"]
    assert list(sheet["sample"]) == ["a", "b", "GSM2", "GSM3", "counts.csv"]
    assert list(sheet["condition"]) == [""] * 5


def test_cli_sheet_validates_and_ingests_every_member(tmp_path: Path) -> None:
    """The listed names, built into a real tar: the written sheet passes the workflow's checks
    and every row ingests the counts that were put in its files."""
    _, names = gs.read_filelist(FILELIST.read_text())
    truth = {"GSM4811001": counts(1, 6), "GSM4811002": counts(2, 5), "GSM4811003": counts(3, 4)}
    truth["GSM4811004"] = counts(4, 3)
    write_10x_mtx(tmp_path / "m1", truth["GSM4811001"])
    write_10x_mtx(tmp_path / "m2", truth["GSM4811002"])
    write_10x_h5(tmp_path / "m3.h5", truth["GSM4811003"])
    t = truth["GSM4811004"]
    table = pd.DataFrame(t.X.toarray().T.astype(int), index=t.var_names, columns=t.obs_names)
    with tarfile.open(tmp_path / "GSE999001_RAW.tar", "w") as tar:
        for name in names:
            gsm, part = name.split("_")[0], name.rsplit("_", 1)[-1]
            if gsm in ("GSM4811001", "GSM4811002"):
                src = tmp_path / ("m1" if gsm.endswith("1") else "m2") / part
                add_file(tar, name, src.read_bytes())
            elif name.endswith(".h5"):
                add_file(tar, name, (tmp_path / "m3.h5").read_bytes())
            elif name.endswith(".csv.gz"):
                add_file(tar, name, gzip.compress(table.to_csv().encode()))
            else:
                add_file(tar, name, b"index")
    out = tmp_path / "samples.tsv"
    assert gs.main([str(FILELIST), "--out", str(out), *CONDITIONS]) == 0
    sheet = tms.validate_sample_sheet(
        tms.read_sample_sheet(out), SAMPLES_SCHEMA, contrast=CONTRAST, base_dir=tmp_path
    )
    assert "geo_accession" in tms.metadata_columns(sheet)
    for _, row in sheet.iterrows():
        a = ingest.ingest_sample(
            tmp_path / row["path"],
            sample=row["sample"],
            condition=row["condition"],
            member=row["member"],
            cell_calling="never",
        )
        np.testing.assert_array_equal(dense(a), dense(truth[row["member"]]))


def test_module_runs_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "s.tsv"
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow/scripts")}
    cmd = [sys.executable, "-m", "tmeflow.inputs._geo_sheet", str(FILELIST), "--out", str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    assert "fill in the condition of 4 sample(s)" in done.stderr
    assert out.read_text().startswith("# written by tmeflow.inputs._geo_sheet")
    assert len(tms.read_sample_sheet(out)) == 4
