"""tmeflow.core._provenance: input hashes, versions, seeds, deterministic JSON, run times."""

import hashlib
import json
import subprocess

import pytest

from tmeflow.core import _provenance as provenance


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_sha256_matches_hashlib_across_chunks(tmp_path):
    data = bytes(range(256)) * 9000  # > 1 MiB chunk
    f = _write(tmp_path / "m.h5", data)
    assert provenance.sha256_file(f) == hashlib.sha256(data).hexdigest()


def test_input_digests_expand_folders_sorted_and_fail_on_missing(tmp_path):
    a = _write(tmp_path / "b.h5", b"one")
    _write(tmp_path / "mtx" / "matrix.mtx.gz", b"two")
    _write(tmp_path / "mtx" / "barcodes.tsv.gz", b"three")
    got = provenance.input_digests([str(tmp_path / "mtx"), a, a])
    assert list(got) == sorted(got)
    assert len(got) == 3
    assert got[str(tmp_path / "mtx" / "barcodes.tsv.gz")] == hashlib.sha256(b"three").hexdigest()
    assert got[str(a)] == hashlib.sha256(b"one").hexdigest()
    with pytest.raises(FileNotFoundError, match="absent"):
        provenance.input_digests([tmp_path / "absent.h5"])


def test_package_versions_known_and_missing():
    got = provenance.package_versions(["numpy", "no-such-dist-tmeflow"])
    import numpy

    assert got == {"no-such-dist-tmeflow": None, "numpy": numpy.__version__}


def test_find_seeds_nested():
    cfg = {"seed": 3, "scvi": {"seed": 7, "n": 1}, "umap": {"random_seed": 1}, "x": "seed"}
    assert provenance.find_seeds(cfg) == {"scvi.seed": 7, "seed": 3, "umap.random_seed": 1}


def test_workflow_version_unknown_outside_git_and_described_inside(tmp_path):
    assert provenance.workflow_version(tmp_path) == "unknown"
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.org"]
    try:
        subprocess.run([*git, "init", "-q"], check=True)
        (repo / "f.txt").write_text("a\n")
        subprocess.run([*git, "add", "f.txt"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "c"], check=True)
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git is not usable here")
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert provenance.workflow_version(repo) == head
    (repo / "f.txt").write_text("b\n")
    assert provenance.workflow_version(repo) == f"{head}-dirty"
    # A sub-folder of a clone is not the workflow's own clone.
    (repo / "sub").mkdir()
    assert provenance.workflow_version(repo / "sub") == "unknown"


def test_build_provenance_is_time_free_and_byte_stable(tmp_path):
    m = _write(tmp_path / "in" / "s1.h5", b"counts")
    cfg = {"seed": 0, "genes_of_interest": ["Gas6", "AXL"], "contrast": {"test": "alectinib"}}
    kwargs = dict(config=cfg, inputs=[str(m)], repo_dir=tmp_path, packages=["numpy"])
    one = provenance.build_provenance(**kwargs)
    assert one["workflow"]["version"] == "unknown"
    assert one["config"] == cfg
    assert one["seeds"] == {"seed": 0}
    assert one["inputs"] == {str(m): hashlib.sha256(b"counts").hexdigest()}
    assert set(one) == {"workflow", "python", "platform", "packages", "config", "seeds", "inputs"}
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    provenance.write_json(one, a)
    provenance.write_json(provenance.build_provenance(**kwargs), b)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes().endswith(b"}\n")
    assert json.loads(a.read_text()) == one
    m.write_bytes(b"other counts")
    assert provenance.build_provenance(**kwargs)["inputs"] != one["inputs"]


BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_run_times_from_benchmark_files_and_output_mtimes(tmp_path, monkeypatch):
    import os

    monkeypatch.chdir(tmp_path)
    scvi = _write(
        tmp_path / "benchmarks" / "integrate_scvi" / "integrate_scvi.tsv",
        (
            BENCH_HEADER + "100.00\t0:01:40\t2048.50\t4096\t2000\t2010\t1.5\t30\t95.2\t190.4\n"
        ).encode(),
    )
    os.utime(scvi, (1_700_000_100.0, 1_700_000_100.0))
    qc = _write(
        tmp_path / "benchmarks" / "qc_filter" / "s1.tsv",
        (BENCH_HEADER + "2.50\t0:00:02\t300\tNA\tNA\tNA\tNA\tNA\tNA\t2.0\n").encode(),
    )
    os.utime(qc, (1_700_000_010.0, 1_700_000_010.0))
    _write(tmp_path / "benchmarks" / "broken" / "empty.tsv", BENCH_HEADER.encode())  # no row
    _write(tmp_path / "results" / "integrate" / "integrated.h5ad", b"x")
    other = _write(tmp_path / "results" / "qc" / "summary.tsv", b"y")
    os.utime(other, (1_700_000_500.0, 1_700_000_500.0))
    os.utime(tmp_path / "results" / "integrate" / "integrated.h5ad", (1_700_000_100.0,) * 2)
    got = provenance.run_times(
        [
            "results/integrate/integrated.h5ad",
            "results/qc/summary.tsv",
            "results/qc",
            "results/absent.tsv",
        ],
        now=1_700_001_000.0,
    )
    assert got["start"] == "2023-11-14T22:13:20+00:00"  # scvi's end minus its 100 s
    assert got["end"] == "2023-11-14T22:21:40+00:00"  # summary.tsv's mtime
    assert got["recorded"] == "2023-11-14T22:30:00+00:00"
    assert set(got["jobs"]) == {
        "benchmarks/integrate_scvi/integrate_scvi.tsv",
        "benchmarks/qc_filter/s1.tsv",
    }
    job = got["jobs"]["benchmarks/integrate_scvi/integrate_scvi.tsv"]
    assert job["rule"] == "integrate_scvi"
    assert (job["start"], job["end"]) == ("2023-11-14T22:13:20+00:00", "2023-11-14T22:15:00+00:00")
    assert (job["s"], job["max_rss"], job["cpu_time"]) == (100.0, 2048.5, 190.4)
    assert "h:m:s" not in job
    qc_job = got["jobs"]["benchmarks/qc_filter/s1.tsv"]
    assert qc_job["rule"] == "qc_filter" and qc_job["max_vms"] is None
    assert got["outputs"] == {
        "results/integrate/integrated.h5ad": {"modified": "2023-11-14T22:15:00+00:00"},
        "results/qc/summary.tsv": {"modified": "2023-11-14T22:21:40+00:00"},
    }
    json.dumps(got)  # JSON-safe


def test_read_benchmark_combines_repeats(tmp_path):
    f = _write(
        tmp_path / "b.tsv",
        (
            BENCH_HEADER
            + "1.00\t0\t10\t1\t1\t1\t0\t0\t50\t0.5\n"
            + "2.00\t0\t30\t1\t1\t1\t0\t0\t60\t1.0\n"
        ).encode(),
    )
    got = provenance.read_benchmark(f)
    assert (got["s"], got["cpu_time"], got["max_rss"], got["repeats"]) == (3.0, 1.5, 30.0, 2)
    assert provenance.read_benchmark(tmp_path / "absent.tsv") is None


def test_run_times_without_benchmarks_or_outputs(tmp_path):
    got = provenance.run_times([], benchmark_dir=tmp_path / "none", now=0.0)
    assert got == {
        "start": None,
        "end": None,
        "recorded": "1970-01-01T00:00:00+00:00",
        "jobs": {},
        "outputs": {},
    }


def test_present_outputs_sorted_without_skipped_and_temporary(tmp_path):
    (tmp_path / "qc").mkdir()
    for name in ("qc/b.tsv", "qc/a.tsv", "provenance.json", "x.tmp.h5ad"):
        (tmp_path / name).write_text("")
    got = provenance.present_outputs(tmp_path, skip=[str(tmp_path / "provenance.json")])
    assert got == [str(tmp_path / p) for p in ("qc", "qc/a.tsv", "qc/b.tsv")]


def test_hvg_fallbacks_recorded_from_the_hvg_table(tmp_path) -> None:
    """Issue 13: the provenance record names the HVG fits that needed a fallback."""
    from tmeflow.core import _tables as tables
    from tmeflow.embed import _hvg as hvg

    record = {
        "fits": {
            "human": {
                "s1": {"step": "seurat_v3", "span": 0.3, "min_cells": 1, "n_cells": 40},
                "s2": {
                    "step": "seurat_v3_span",
                    "span": 0.6,
                    "min_cells": 1,
                    "n_cells": 22,
                    "n_genes": 12015,
                    "failed": "seurat_v3: reciprocal condition number 1e-14",
                },
            },
            "mouse": {"s3": {"step": "none", "n_cells": 1, "failed": "fewer than 2 cells"}},
        }
    }
    table = hvg.hvg_table(record)
    assert list(table.columns) == hvg.HVG_TABLE_COLUMNS
    assert table["step"].tolist() == ["seurat_v3", "seurat_v3_span", "none"]
    tables.write_tsv(table, tmp_path / "hvg.tsv")
    out = provenance.hvg_fallbacks(tmp_path / "hvg.tsv")
    assert [(f["batch"], f["step"]) for f in out] == [("s2", "seurat_v3_span"), ("s3", "none")]
    assert "reciprocal condition number" in out[0]["failed"]
    record = provenance.build_provenance(
        config={"seed": 1}, inputs=[], repo_dir=tmp_path, fallbacks={"hvg": out}
    )
    assert record["fallbacks"]["hvg"][0]["step"] == "seurat_v3_span"
