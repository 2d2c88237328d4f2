"""End to end on the input stages only (ingest -> species -> QC summary) of a tiny demo.

Inputs come from a local HTTP server on 127.0.0.1 (nothing reaches the network): a good
checksum runs through; a wrong one fails in download_sample with the message in the log and
no download nor ingest output. A condition whose samples all lose every cell fails in
qc_summary, before integration, naming the condition.
"""

import functools
import hashlib
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow import simulate

from .helpers import REPO, copy_workflow, snakemake, write_config

pytestmark = pytest.mark.workflow

TINY = {"n_replicates": 2, "cells_per_sample": 150, "n_genes_mouse": 300, "n_genes_human": 150}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The tiny demo written to a folder served over HTTP on 127.0.0.1 (stopped afterwards)."""
    root = tmp_path_factory.mktemp("served")
    pool = simulate.read_gmt_genes(REPO / "config/genesets/mh.all.v2023.1.Mm.symbols.gmt")
    exp = simulate.simulate_experiment(
        n_replicates=TINY["n_replicates"],
        cells_per_sample=TINY["cells_per_sample"],
        conditions=("control", "alectinib"),
        n_genes_mouse=TINY["n_genes_mouse"],
        n_genes_human=TINY["n_genes_human"],
        gene_pool=pool,
        seed=0,
    )
    simulate.write_demo(root, exp)
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.timeout = 5
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2})
    thread.daemon = True
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _sheet(work: Path, rows: list[dict]) -> Path:
    path = work / "config" / "inputs.tsv"
    pd.DataFrame(rows).to_csv(path, sep="\t", index=False)
    return path


def _local_rows(root: Path, work: Path) -> list[dict]:
    """The demo samples as local paths copied into the work dir, h5 and mtx alike."""
    rows = []
    for cond in ("control", "alectinib"):
        for i in (1, 2):
            name = f"{cond}_{i}"
            src = root / f"{name}.h5" if (root / f"{name}.h5").exists() else root / name
            dest = work / "inputs" / src.name
            dest.parent.mkdir(exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dest)
            else:
                shutil.copy2(src, dest)
            rows.append({"sample": name, "condition": cond, "path": f"inputs/{src.name}"})
    return rows


def _config(work: Path, sheet: Path, **qc) -> Path:
    return write_config(
        work,
        {
            "samples": str(sheet.relative_to(work)),
            "demo": TINY,
            "qc": {"doublets": False, **qc},
        },
    )


def _url_row(root: Path, base: str, rows: list[dict]) -> tuple[str, str]:
    h5 = next(r for r in rows if r["path"].endswith(".h5"))
    digest = hashlib.sha256((root / Path(h5["path"]).name).read_bytes()).hexdigest()
    return h5["sample"], digest


def test_url_with_good_checksum_runs_through_qc(served, tmp_path):
    root, base = served
    work = copy_workflow(tmp_path / "wf")
    rows = _local_rows(root, work)
    sample, digest = _url_row(root, base, rows)
    # an mtx folder's three files by URL (issue 30): the matrix and features checksummed
    mtx = next(r["sample"] for r in rows if not r["path"].endswith(".h5"))
    sha = {n: hashlib.sha256((root / mtx / n).read_bytes()).hexdigest()
           for n in ("matrix.mtx.gz", "features.tsv.gz")}  # fmt: skip
    for r in rows:
        r.update(sha256="", barcodes="", features="", features_sha256="")
        if r["sample"] == sample:
            r["path"], r["sha256"] = f"{base}/{sample}.h5", digest
        if r["sample"] == mtx:
            r["path"], r["sha256"] = f"{base}/{mtx}/matrix.mtx.gz", sha["matrix.mtx.gz"]
            r["barcodes"] = f"{base}/{mtx}/barcodes.tsv.gz"
            r["features"] = f"{base}/{mtx}/features.tsv.gz"
            r["features_sha256"] = sha["features.tsv.gz"]
    cfg = _config(work, _sheet(work, rows))
    snakemake(work, "results/qc/summary.tsv", "--configfile", str(cfg))

    assert (work / f"resources/download/{sample}/{sample}.h5").read_bytes() == (
        root / f"{sample}.h5"
    ).read_bytes()
    for name in ("matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz"):
        got = work / f"resources/download/{mtx}/{name}"
        assert got.read_bytes() == (root / mtx / name).read_bytes(), name
    summary = pd.read_csv(work / "results/qc/summary.tsv", sep="\t")
    assert sorted(summary["sample"]) == sorted(r["sample"] for r in rows)
    assert summary.set_index("sample").loc[mtx, "format"] == "10x_mtx"
    assert summary.set_index("sample").loc[mtx, "n_barcodes"] == TINY["cells_per_sample"]
    row = summary.set_index("sample").loc[sample]
    assert row["format"] == "10x_h5" and not row["looks_raw"]
    assert row["n_barcodes"] == row["n_cells_in"] == TINY["cells_per_sample"]
    assert row["prefixes"] == "human:GRCh38_;mouse:mm10_"
    assert row["n_human"] + row["n_mouse"] + row["n_mixed"] == row["n_cells_in"]
    # composition, per-reason removals, thresholds and contamination are all reported
    for col in ("pct_human", "removed_low_counts", "removed_mixed_species",
                "threshold_min_counts_human", "contamination_mouse_in_human_median"):  # fmt: skip
        assert col in summary.columns, col
    assert (summary["removed_mixed_species"] == summary["n_mixed"]).all()
    assert (summary["contamination_mouse_in_human_median"] < 0.2).all()
    assert (summary["note"].fillna("") == "").all()


def test_url_with_wrong_checksum_fails_and_leaves_nothing(served, tmp_path):
    root, base = served
    work = copy_workflow(tmp_path / "wf")
    rows = _local_rows(root, work)
    sample, digest = _url_row(root, base, rows)
    wrong = "0" * 64
    for r in rows:
        r["sha256"] = ""
        if r["sample"] == sample:
            r["path"], r["sha256"] = f"{base}/{sample}.h5", wrong
    cfg = _config(work, _sheet(work, rows))
    proc = snakemake(work, f"results/ingest/{sample}.h5ad", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    log = (work / f"logs/download_sample/{sample}/{sample}.h5.log").read_text()
    assert f"sample {sample!r}: checksum mismatch" in log
    assert digest in log and wrong in log and "sha256 column" in log
    assert not (work / f"resources/download/{sample}/{sample}.h5").exists()
    assert not (work / f"results/ingest/{sample}.h5ad").exists()


def _all_mixed_h5ad(path: Path) -> None:
    """Cells with half human, half mouse UMIs: every one is a cross-species doublet."""
    rng = np.random.default_rng(1)
    genes = [f"GRCh38_G{i}" for i in range(300)] + [f"mm10_G{i}" for i in range(300)]
    X = sp.csr_matrix(rng.poisson(5.0, size=(120, 600)).astype(np.float32))
    a = ad.AnnData(X=X, var=pd.DataFrame(index=genes))
    a.obs_names = [f"AAACCTGAG{i:05d}" for i in range(120)]
    a.write_h5ad(path)


def test_condition_without_cells_fails_before_integration(served, tmp_path):
    root, _ = served
    work = copy_workflow(tmp_path / "wf")
    rows = _local_rows(root, work)
    for r in rows:
        if r["condition"] == "alectinib":
            dest = work / "inputs" / f"{r['sample']}_mixed.h5ad"
            _all_mixed_h5ad(dest)
            r["path"] = f"inputs/{dest.name}"
    cfg = _config(work, _sheet(work, rows))
    proc = snakemake(work, "results/qc/summary.tsv", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    log = (work / "logs/qc_summary/qc_summary.log").read_text()
    assert "condition 'alectinib' has no cells after QC in any of its samples" in log
    assert "alectinib_1" in log and "mixed_species" in log
    assert not (work / "results/qc/summary.tsv").exists()
    # the empty samples themselves were reported, not crashed on
    m = pd.read_csv(work / "results/qc/alectinib_1.metrics.tsv", sep="\t")
    assert m["n_kept"].iat[0] == 0 and m["removed_mixed_species"].iat[0] == 120
    assert "QC removed all 120 cells" in m["note"].iat[0]


@pytest.mark.parametrize(
    ("path", "sha", "message"),
    [
        (
            "http://127.0.0.1:9/GSM1_matrix.mtx.gz",
            "",
            "sample 'control_1': URL 'http://127.0.0.1:9/GSM1_matrix.mtx.gz' is a Matrix Market "
            "matrix; column 'barcodes' must hold the http(s) URL of its barcodes list",
        ),
        (
            "http://127.0.0.1:9/counts.bin",
            "",
            "sample 'control_1': cannot tell the format of 'counts.bin' from its name. Add a "
            "'format' column",
        ),
        ("http://127.0.0.1:9/c.h5", "abc", "column 'sha256': 'abc' does not match"),
        ("inputs/control_1.h5", "a" * 64, "a sha256 is given but path 'inputs/control_1.h5'"),
    ],
)
def test_url_rows_checked_at_parse_time(served, tmp_path, path, sha, message):
    root, _ = served
    work = copy_workflow(tmp_path / "wf")
    rows = _local_rows(root, work)
    for r in rows:
        r["sha256"] = sha if r["sample"] == "control_1" else ""
        if r["sample"] == "control_1":
            r["path"] = path
    cfg = _config(work, _sheet(work, rows))
    proc = snakemake(work, "-n", "results/qc/summary.tsv", "--configfile", str(cfg), check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr
    assert not (work / "results").exists()
