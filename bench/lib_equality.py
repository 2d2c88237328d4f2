"""Equality harness (issue 16, item 6): tmeflow's hand-written helpers vs library versions.

For each candidate, the workflow's function and a library-based version run on the same
realistic inputs (synthetic sparse counts with empty cells and genes, int and float32, several
samples; the shipped GMT files and edge cases; a fake ``benchmarks/`` tree) and the outputs are
compared for bit identity (``np.array_equal`` + same dtype, ``DataFrame.equals``, ``==`` on
dicts). Prints one line per comparison; exits non-zero when a switched candidate differs.

    .venv/bin/python bench/lib_equality.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

RESULTS: list[tuple[str, bool, str]] = []


def record(name: str, same: bool, detail: str = "") -> None:
    RESULTS.append((name, same, detail))
    print(f"{'SAME' if same else 'DIFF'}  {name}  {detail}")


def arrays_same(a, b) -> tuple[bool, str]:
    a = a.toarray() if sp.issparse(a) else np.asarray(a)
    b = b.toarray() if sp.issparse(b) else np.asarray(b)
    if a.dtype != b.dtype:
        return False, f"dtype {a.dtype} vs {b.dtype}"
    if a.shape != b.shape:
        return False, f"shape {a.shape} vs {b.shape}"
    if np.array_equal(a, b, equal_nan=a.dtype.kind == "f"):
        return True, f"dtype {a.dtype}"
    diff = a != b
    if a.dtype.kind == "f":
        diff &= ~(np.isnan(a) & np.isnan(b))
        rel = np.abs(a[diff] - b[diff]) / np.maximum(np.abs(a[diff]), 1e-300)
        return False, f"{diff.sum()} of {a.size} values differ, max rel {rel.max():.3g}"
    return False, f"{diff.sum()} of {a.size} values differ"


def counts_datasets(seed: int = 0) -> dict[str, AnnData]:
    """Sparse counts: 3 samples x 4 cell types, empty cells and genes, mito genes, NaN labels."""
    rng = np.random.default_rng(seed)
    out = {}
    for n_cells, n_genes, density in ((600, 300, 0.1), (3000, 2000, 0.05)):
        dense = rng.negative_binomial(2, 0.6, size=(n_cells, n_genes)).astype(np.int64)
        dense *= rng.random((n_cells, n_genes)) < density * 4
        dense[rng.choice(n_cells, 15, replace=False)] = 0  # empty cells
        dense[:, rng.choice(n_genes, 10, replace=False)] = 0  # empty genes
        dense[rng.choice(n_cells, 3), 0] = 40_000  # a few large counts
        names = [f"mt-Gene{i}" if i < 13 else f"Gene{i}" for i in range(n_genes)]
        obs = pd.DataFrame(
            {
                "sample": pd.Categorical(rng.choice(["s2", "s10", "s1"], n_cells)),
                "cell_type": rng.choice(["T", "B", "Mac", "Fib"], n_cells).astype(object),
                "condition": "ctl",
            },
            index=[f"c{i}" for i in range(n_cells)],
        )
        obs.loc[obs["sample"] == "s10", "condition"] = "drug"
        obs.loc[obs.index[:4], "cell_type"] = np.nan  # unlabelled cells
        for kind, dtype in (("int32", np.int32), ("float32", np.float32), ("int64", np.int64)):
            mat = sp.csr_matrix(dense.astype(dtype))
            a = AnnData(X=mat.copy(), obs=obs.copy(), var=pd.DataFrame(index=names))
            a.layers["counts"] = mat.copy()
            out[f"{n_cells}x{n_genes}/{kind}"] = a
        out[f"{n_cells}x{n_genes}/dense-int32"] = AnnData(
            X=dense.astype(np.int32), obs=obs.copy(), var=pd.DataFrame(index=names)
        )
    return out


# --------------------------------------------------------------------------- pseudobulk
def pseudobulk_indicator(adata, *, group_key, sample_key, layer):
    """The hand-written sums replaced by ``scanpy.get.aggregate``: an indicator-matrix product."""
    from tmeflow.stats._pseudobulk import counts_matrix, pair_indicator

    mat = counts_matrix(adata, layer)
    ind, pairs = pair_indicator(adata, sample_key, group_key)
    summed = (ind @ mat).toarray().astype(np.int64)
    return pd.DataFrame(summed, index=pairs.index, columns=adata.var_names.astype(str))


def pseudobulk_cases(data):
    """The counts data sets plus label edge cases (categorical levels, int samples, no cells)."""
    cases = {k: v for k, v in data.items()}
    base = data["600x300/int32"]
    a = base.copy()
    a.obs["cell_type"] = pd.Categorical(
        a.obs["cell_type"], categories=["Mac", "Unused", "T", "B", "Fib"]
    )
    cases["categorical groups (unused level, NaN)"] = a
    a = base.copy()
    a.obs["sample"] = a.obs["sample"].map({"s1": 1, "s2": 2, "s10": 10}).astype(int)
    cases["integer samples"] = a
    a = base[:40].copy()
    a.obs["cell_type"] = pd.Series(["T"] * 3 + [np.nan] * 37, index=a.obs_names, dtype=object)
    cases["3 labelled cells"] = a
    a = base[:10].copy()
    a.obs["cell_type"] = np.nan
    cases["no labelled cells"] = a
    return cases


def check_pseudobulk(data):
    from tmeflow.stats._pseudobulk import pseudobulk

    for name, a in pseudobulk_cases(data).items():
        layer = "counts" if "counts" in a.layers else None
        new, _ = pseudobulk(a, layer=layer)
        old = pseudobulk_indicator(a, group_key="cell_type", sample_key="sample", layer=layer)
        same, detail = arrays_same(old.to_numpy(), new.to_numpy())
        same = same and old.equals(new) and list(old.index) == list(new.index)
        record(f"pseudobulk sums: indicator product vs sc.get.aggregate [{name}]", same, detail)


# --------------------------------------------------------------------------- QC metrics
def qc_scanpy(adata):
    import scanpy as sc

    from tmeflow.cells._qc import mito_mask

    a = adata.copy()
    a.var["mt"] = mito_mask(a)
    obs, _ = sc.pp.calculate_qc_metrics(
        a, qc_vars=["mt"], percent_top=None, log1p=False, inplace=False
    )
    return obs[["total_counts", "n_genes_by_counts", "total_counts_mt", "pct_counts_mt"]]


def check_qc(data):
    from tmeflow.cells._qc import qc_metrics

    for name, a in data.items():
        old = a.copy()
        qc_metrics(old)
        new = qc_scanpy(a)
        for col in new.columns:
            want = old.obs[col].to_numpy()
            got = new[col].to_numpy()
            same, detail = arrays_same(want, got)
            record(f"qc.qc_metrics vs sc.pp.calculate_qc_metrics [{name}] {col}", same, detail)
            if not same:  # the best a wrapper could do: our dtype, NaN (empty cell) -> 0
                got = np.nan_to_num(got.astype(want.dtype), nan=0.0)
                same, detail = arrays_same(want, got)
                record(f"  ... cast to {want.dtype}, NaN -> 0", same, detail)


# --------------------------------------------------------------------------- normalisation
def normalise_scanpy(adata, target_sum=1e4):
    import scanpy as sc

    a = adata.copy()
    counts = a.layers["counts"] if "counts" in a.layers else a.X
    counts = sp.csr_matrix(counts).astype(np.int32)
    a.layers["counts"] = counts
    a.X = counts.astype(np.float32)
    sc.pp.normalize_total(a, target_sum=target_sum)
    sc.pp.log1p(a)
    return a.X


def check_normalise(data):
    from tmeflow.embed._integrate import normalise
    from tmeflow.stats._pseudobulk import cp10k_log

    for name, a in data.items():
        old = a.copy()
        normalise(old)
        same, detail = arrays_same(old.X, normalise_scanpy(a))
        record(f"integrate.normalise vs normalize_total+log1p [{name}]", same, detail)
        # cp10k_log: float64, totals over all genes (also for a gene subset).
        import scanpy as sc

        mat = sp.csr_matrix(a.layers["counts"] if "counts" in a.layers else a.X)
        totals = np.asarray(mat.sum(axis=1)).ravel()
        b = AnnData(X=mat.astype(np.float64))
        sc.pp.normalize_total(b, target_sum=1e4)
        sc.pp.log1p(b)
        same, detail = arrays_same(cp10k_log(mat, totals), b.X)
        record(f"pseudobulk.cp10k_log vs normalize_total+log1p [{name}]", same, detail)


# --------------------------------------------------------------------------- GMT
GMT_CASES = {
    "plain": "A\tdesc\tg1\tg2\nB\tdesc\tg3\n",
    "duplicate set names": "A\td\tg1\nB\td\tg2\nA\td\tg3\tg4\n",
    "blank lines": "\nA\td\tg1\n\n   \nB\td\tg2\n\n",
    "CRLF": "A\td\tg1\tg2\r\nB\td\tg3\r\n",
    "trailing tabs": "A\td\tg1\tg2\t\t\nB\td\tg3\t\n",
    "duplicate genes": "A\td\tg1\tg2\tg1\n",
    "empty middle field": "A\td\tg1\t\tg2\n",
    "short line": "A\td\tg1\nB\td\n",
}


def check_gmt():
    import gseapy

    from tmeflow.core._genesets import read_gmt

    files = sorted((REPO / "config" / "genesets").glob("*.gmt"))
    with tempfile.TemporaryDirectory() as tmp:
        for label, text in GMT_CASES.items():
            p = Path(tmp) / f"{label.replace(' ', '_')}.gmt"
            p.write_bytes(text.encode())
            files.append(p)
        for p in files:
            try:
                old = read_gmt(p)
            except ValueError as err:
                old = f"ValueError: {err}"
            try:
                new = gseapy.read_gmt(str(p))
            except ValueError as err:
                new = f"ValueError: {err}"
            same = old == new and (not isinstance(old, dict) or list(old) == list(new))
            detail = "" if same else f"{_short(old)} vs {_short(new)}"
            record(f"gsea.read_gmt vs gseapy.read_gmt [{p.name}]", same, detail)


def _short(x) -> str:
    s = repr(x)
    return s if len(s) < 120 else s[:117] + "..."


# --------------------------------------------------------------------------- run times
def check_benchmarks():
    """Snakemake's own benchmark writer -> fake ``benchmarks/`` tree -> ``run_times``."""
    import os

    from snakemake.benchmark import BenchmarkRecord, write_benchmark_records

    from tmeflow.core._provenance import run_times

    jobs = {"qc_filter/s1.tsv": (2.5, 300.25), "integrate_scvi/integrate_scvi.tsv": (100, 2048)}
    with tempfile.TemporaryDirectory() as tmp:
        expected = {}
        for rel, (secs, rss) in jobs.items():
            rec = BenchmarkRecord(running_time=secs, max_rss=rss, cpu_time=secs * 2)
            rec.data_collected = True
            path = Path(tmp) / "benchmarks" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            write_benchmark_records([rec], str(path), False)
            os.utime(path, (1_700_000_000.0, 1_700_000_000.0))
            expected[str(path)] = {"rule": rel.split("/")[0], "s": float(secs), "max_rss": rss}
        got = run_times([], benchmark_dir=Path(tmp) / "benchmarks", now=0.0)["jobs"]
        seen = {k: {c: v[c] for c in ("rule", "s", "max_rss")} for k, v in got.items()}
        same = seen == expected
        record("provenance.run_times reads snakemake's benchmark TSVs", same, _short(seen))


def main() -> int:
    data = counts_datasets()
    check_pseudobulk(data)
    check_qc(data)
    check_normalise(data)
    check_gmt()
    check_benchmarks()
    n_diff = sum(not s for _, s, _ in RESULTS)
    print(f"\n{len(RESULTS)} comparisons, {n_diff} differ")
    switched = ("pseudobulk sums", "provenance.run_times")
    return int(any(not same for name, same, _ in RESULTS if name.startswith(switched)))


if __name__ == "__main__":
    raise SystemExit(main())
