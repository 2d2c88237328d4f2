"""Highly variable genes: scanpy identity, the fallback chain, per-species selection (issue 13)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import scipy.sparse as sp

from tmeflow.cells import _species as species
from tmeflow.core import _h5ad as h5ad
from tmeflow.embed import _hvg as hvg
from tmeflow.embed import _integrate as integrate
from tmeflow.inputs import _read_counts as readers

from .._synthetic import clustered_counts


def _counts_adata(x, batches="s0"):
    n = x.shape[0]
    return ad.AnnData(
        obs=pd.DataFrame({"sample": batches}, index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(x.shape[1])]),
        layers={"counts": sp.csr_matrix(x)},
    )


def _rare_genes(n=100, g=2000, k=1000, times=1, seed=0):
    """NB counts whose first ``k`` genes are seen ``times`` times (one count each)."""
    rng = np.random.default_rng(seed)
    x = rng.negative_binomial(2, 0.5, (n, g)).astype(np.float32)
    x[:, :k] = 0
    for _ in range(times):
        x[rng.integers(0, n, k), np.arange(k)] = 1
    return _counts_adata(x)


def _two_batches():
    adata = clustered_counts(n_per_group=80, n_genes=300, markers_per_group=5, n_batches=2)
    adata.layers["counts"] = sp.csr_matrix(adata.X)
    return adata


def test_first_fit_identical_to_scanpy_seurat_v3_with_batches():
    adata = _two_batches()
    assert (np.asarray((adata.layers["counts"] > 0).sum(0)).ravel() > 0).all()
    ref = sc.pp.highly_variable_genes(
        adata,
        flavor="seurat_v3",
        layer="counts",
        n_top_genes=50,
        batch_key="sample",
        span=0.3,
        inplace=False,
    )
    hvg.select_hvgs(adata, n_top_genes=50, batch_key="sample")
    assert adata.uns["hvg"]["step"] == "seurat_v3" and adata.uns["hvg"]["n_fallbacks"] == 0
    assert adata.uns["hvg"]["mode"] == "single"
    np.testing.assert_array_equal(
        adata.var["highly_variable"].to_numpy(), ref["highly_variable"].to_numpy()
    )
    np.testing.assert_array_equal(
        adata.var["highly_variable_rank"].to_numpy(), ref["highly_variable_rank"].to_numpy()
    )
    np.testing.assert_array_equal(
        adata.var["highly_variable_nbatches"].to_numpy(),
        ref["highly_variable_nbatches"].to_numpy(),
    )


def test_first_fit_identical_to_scanpy_without_batches():
    adata = _two_batches()
    adata.obs["sample"] = "s0"
    ref = sc.pp.highly_variable_genes(
        adata, flavor="seurat_v3", layer="counts", n_top_genes=40, inplace=False
    )
    hvg.select_hvgs(adata, n_top_genes=40, batch_key="sample")
    assert adata.uns["hvg"]["batch_key"] == ""
    np.testing.assert_array_equal(
        adata.var["highly_variable"].to_numpy(), ref["highly_variable"].to_numpy()
    )


@pytest.mark.parametrize(
    ("k", "times", "expected"),
    [
        (500, 1, "seurat_v3"),
        (1000, 1, "seurat_v3_min_cells"),  # fits without the genes seen once
        (800, 3, "seurat_v3_span"),  # genes seen in 3 cells: span 0.3 singular, 0.6 fits
        (1500, 3, "pearson_residuals"),  # genes seen in 3 cells keep every loess fit singular
    ],
)
def test_real_loess_failures_reach_the_expected_step(k, times, expected, caplog):
    adata = _rare_genes(k=k, times=times)
    with caplog.at_level("WARNING", logger="tmeflow.embed._hvg"):
        hvg.select_hvgs(adata, n_top_genes=200, batch_key="sample")
    info = adata.uns["hvg"]
    fit = info["fits"]["all"]["all"]
    assert info["step"] == fit["step"] == expected
    assert info["n_selected"] == 200
    n_failed = hvg.HVG_STEPS.index(expected)
    assert fit["failed"].count(": ") == n_failed
    if n_failed:
        assert fit["failed"].startswith("seurat_v3: ")
        assert "step seurat_v3 failed" in caplog.text and f"step {expected} used" in caplog.text
    else:
        assert fit["failed"] == "" and not caplog.text
    if expected == "seurat_v3_min_cells":
        assert info["min_cells"] == 3 and fit["span"] == 0.3
        # genes seen once were left out of the fit, so none can be selected
        assert not adata.var["highly_variable"].to_numpy()[:k].any()
    if expected == "seurat_v3_span":
        assert fit["min_cells"] == 3 and fit["span"] == 0.6


@pytest.mark.parametrize("n_fail", range(len(hvg.HVG_STEPS)))
def test_each_fallback_step_is_reached_and_recorded(n_fail, monkeypatch, caplog):
    failing = set(hvg.HVG_STEPS[:n_fail])
    real = hvg._step_score

    def flaky(step, *args, **kwargs):
        if step in failing:
            raise ValueError(f"forced failure of {step}")
        return real(step, *args, **kwargs)

    monkeypatch.setattr(hvg, "_step_score", flaky)
    adata = _two_batches()
    with caplog.at_level("WARNING", logger="tmeflow.embed._hvg"):
        hvg.select_hvgs(adata, n_top_genes=40, batch_key="sample")
    info = adata.uns["hvg"]
    expected = hvg.HVG_STEPS[n_fail]
    assert info["step"] == expected
    assert info["n_fallbacks"] == (2 if n_fail else 0)
    for batch in ("s0", "s1"):
        fit = info["fits"]["all"][batch]
        assert fit["step"] == expected
        assert fit["failed"] == "; ".join(
            f"{s}: forced failure of {s}" for s in hvg.HVG_STEPS[:n_fail]
        )
        if n_fail:
            assert f"all cells of sample {batch}: step {hvg.HVG_STEPS[0]} failed" in (caplog.text)
    assert info["n_selected"] == 40
    # markers g0..g14 stay highly variable whatever the step
    hv = set(adata.var_names[adata.var["highly_variable"]])
    assert len(hv & {f"g{i}" for i in range(15)}) >= 10


def test_only_one_batch_falls_back(monkeypatch):
    real = hvg._step_score
    first_fits = []

    def flaky(step, *args, **kwargs):
        if step == "seurat_v3":
            first_fits.append(step)
            if len(first_fits) == 2:  # the second batch, s1
                raise ValueError("forced")
        return real(step, *args, **kwargs)

    monkeypatch.setattr(hvg, "_step_score", flaky)
    adata = _two_batches()
    hvg.select_hvgs(adata, n_top_genes=40, batch_key="sample")
    fits = adata.uns["hvg"]["fits"]["all"]
    assert fits["s0"]["step"] == "seurat_v3" and fits["s0"]["failed"] == ""
    assert fits["s1"]["step"] == "seurat_v3_min_cells" and fits["s1"]["span"] == 0.3
    assert fits["s1"]["failed"] == "seurat_v3: forced"
    assert adata.uns["hvg"]["n_fallbacks"] == 1 and adata.uns["hvg"]["n_selected"] == 40


def test_selected_count_is_min_of_n_top_and_eligible():
    adata = _two_batches()
    adata.var_names = ["mt-Co1", *list(adata.var_names[1:])]
    x = adata.layers["counts"].toarray()
    x[:, 1:4] = 0  # never detected: not eligible
    adata.layers["counts"] = sp.csr_matrix(x)
    hvg.select_hvgs(adata, n_top_genes=1000, batch_key="sample")
    assert adata.uns["hvg"]["n_eligible"] == adata.n_vars - 4
    assert adata.uns["hvg"]["n_selected"] == adata.n_vars - 4
    assert not adata.var["highly_variable"].iloc[:4].any()
    # a step-3 fit leaves rare genes out: fewer eligible genes, all of them selected
    rare = _rare_genes(k=1500)
    hvg.select_hvgs(rare, n_top_genes=1000, batch_key="sample")
    n_cells = np.asarray((rare.layers["counts"] > 0).sum(0)).ravel()
    assert rare.uns["hvg"]["step"] == "seurat_v3_min_cells"
    assert rare.uns["hvg"]["n_eligible"] == int((n_cells >= 3).sum()) < 1000
    assert rare.uns["hvg"]["n_selected"] == rare.uns["hvg"]["n_eligible"]


def test_split_budget_proportional_with_floor():
    split = hvg.split_hvg_budget
    cells = {"human": 60, "mouse": 40}
    many = {"human": 10_000, "mouse": 10_000}
    assert split(2000, cells, many) == {"human": 1200, "mouse": 800}
    assert split(2000, {"human": 95, "mouse": 5}, many) == {"human": 1500, "mouse": 500}
    assert split(2000, {"human": 95, "mouse": 5}, many, min_fraction=0) == {
        "human": 1900,
        "mouse": 100,
    }
    assert split(2000, cells, many, min_fraction=0.5) == {"human": 1000, "mouse": 1000}
    # a species with too few genes passes its remainder on; the total is capped by both
    assert split(2000, cells, {"human": 10_000, "mouse": 300}) == {"human": 1700, "mouse": 300}
    assert split(2000, cells, {"human": 500, "mouse": 300}) == {"human": 500, "mouse": 300}
    assert split(2000, {"human": 0, "mouse": 40}, many) == {"human": 0, "mouse": 2000}


def _xenograft(n_human=90, n_mouse=30):
    """Human cells on hg19_ features, mouse cells on mm10_ features, 3 samples; markers."""
    rng = np.random.default_rng(1)
    g = 300
    hum = clustered_counts(n_per_group=n_human // 3 * 2, n_genes=g, n_batches=1, seed=2)
    mus = clustered_counts(n_per_group=n_mouse // 3 * 2, n_genes=g, n_batches=1, seed=3)
    x = sp.vstack(
        [
            sp.hstack([hum.X[rng.permutation(hum.n_obs)[:n_human]], sp.csr_matrix((n_human, g))]),
            sp.hstack([sp.csr_matrix((n_mouse, g)), mus.X[rng.permutation(mus.n_obs)[:n_mouse]]]),
        ]
    ).tocsr()
    # a little ambient RNA of the other species
    x = x + sp.csr_matrix(rng.binomial(1, 0.01, x.shape).astype(np.float32))
    var = [f"hg19_G{i}" for i in range(g)] + [f"mm10_g{i}" for i in range(g)]
    adata = ad.AnnData(
        X=sp.csr_matrix(x, dtype=np.float32),
        obs=pd.DataFrame(
            {"sample": [f"s{i % 3}" for i in range(n_human + n_mouse)]},
            index=[f"c{i}" for i in range(n_human + n_mouse)],
        ),
        var=pd.DataFrame(index=var),
    )
    species.assign_species(adata, mode="xenograft")
    adata.layers["counts"] = adata.X
    return adata


def test_xenograft_selects_within_each_species():
    adata = _xenograft()
    assert adata.obs["species"].value_counts()[["human", "mouse"]].tolist() == [90, 30]
    hvg.select_hvgs(adata, n_top_genes=200, batch_key="sample")
    info = adata.uns["hvg"]
    assert info["mode"] == "xenograft"
    hv = adata.var["highly_variable"].to_numpy()
    var_sp = adata.var["species"].astype(str).to_numpy()
    # 90:30 cells -> 150:50, raised to the floor of 25% of 200 for mouse
    assert info["species"]["human"]["n_selected"] == (hv & (var_sp == "human")).sum() == 150
    assert info["species"]["mouse"]["n_selected"] == (hv & (var_sp == "mouse")).sum() == 50
    assert info["n_selected"] == hv.sum() == 200
    assert set(info["fits"]) == {"human", "mouse"}
    assert set(info["fits"]["mouse"]) == {"s0", "s1", "s2"}
    assert info["fits"]["mouse"]["s0"]["n_cells"] == 10
    # each species' markers (g0..g29 of its features) beat chance (15 human, 5 mouse)
    assert hv[:30].sum() >= 20 and hv[300:330].sum() >= 10


def test_single_species_mode_ignores_obs_species():
    adata = _two_batches()
    adata.var["species"] = "mouse"
    adata.obs["species"] = "mouse"
    hvg.select_hvgs(adata, n_top_genes=50, batch_key="sample")
    assert adata.uns["hvg"]["mode"] == "single" and set(adata.uns["hvg"]["species"]) == {"all"}


def test_uns_hvg_writes_to_h5ad(tmp_path, monkeypatch):
    adata = _xenograft()
    hvg.select_hvgs(adata, n_top_genes=100, batch_key="sample")
    h5ad.write_h5ad(adata, tmp_path / "a.h5ad")
    back = h5ad.read_h5ad(tmp_path / "a.h5ad")
    assert back.uns["hvg"]["fits"]["human"]["s1"]["step"] == "seurat_v3"


def _hgmm_split(shared_data, n_samples=3, seed=0):
    path = shared_data / "hgmm_100_filtered_mtx"
    if not path.is_dir():
        pytest.skip(f"{path} absent")
    raw = readers.read_counts(path, sample="hgmm")
    species.assign_species(raw, mode="xenograft")
    lab = np.random.default_rng(seed).integers(0, n_samples, raw.n_obs)
    parts = []
    for i in range(n_samples):
        p = raw[lab == i].copy()
        p.obs["sample"] = f"s{i}"
        p.obs_names = [f"s{i}_{b}" for b in p.obs_names]
        parts.append(p)
    return parts


def test_real_hgmm_split_in_three_selects_hvgs_per_species(shared_data, caplog):
    # issue 13: ~40 real cells per sample made every seurat_v3 loess fit singular
    merged = integrate.concat_samples(_hgmm_split(shared_data))
    with caplog.at_level("WARNING", logger="tmeflow.embed._hvg"):
        hvg.select_hvgs(merged, n_top_genes=2000, batch_key="sample")
    info = merged.uns["hvg"]
    assert info["mode"] == "xenograft" and info["n_selected"] == 2000
    hv = merged.var["highly_variable"].to_numpy()
    var_sp = merged.var["species"].astype(str).to_numpy()
    n_h, n_m = (hv & (var_sp == "human")).sum(), (hv & (var_sp == "mouse")).sum()
    assert n_h == info["species"]["human"]["n_selected"] and n_h >= 500
    assert n_m == info["species"]["mouse"]["n_selected"] and n_m >= 500
    assert n_h + n_m == 2000
    assert info["step"] != "seurat_v3" and info["n_fallbacks"] >= 1
    assert "HVG fit for" in caplog.text and "failed" in caplog.text
    for per in info["fits"].values():
        assert set(per) == {"s0", "s1", "s2"}
        for fit in per.values():
            assert fit["step"] in hvg.HVG_STEPS
    integrate.normalise(merged)  # the rest of the merge runs
    assert merged.X.shape == merged.layers["counts"].shape


def test_real_hgmm_merge_drops_and_reports_a_feature_missing_from_one_sample(shared_data):
    parts = _hgmm_split(shared_data)
    gone = parts[1].var_names[:7]
    parts[1] = parts[1][:, parts[1].var_names[7:]].copy()
    merged = integrate.concat_samples(parts)
    assert merged.n_vars == parts[0].n_vars - 7 and not set(gone) & set(merged.var_names)
    assert merged.uns["merge"]["missing"]["s1"]["n_missing"] == 7


def test_loess_is_not_tried_on_too_few_genes():
    """skmisc's loess crashed the process (segmentation fault) on a 3-gene species of a test
    xenograft: a loess step with fewer than MIN_LOESS_POINTS genes per neighbourhood fails like
    a singular fit (an exception the fallback chain catches) and is never called."""
    rng = np.random.default_rng(0)
    counts = sp.csr_matrix(rng.poisson(5.0, size=(120, 3)).astype(np.float64))
    totals = np.asarray(counts.sum(axis=1)).ravel()
    with pytest.raises(ValueError, match="loess neighbourhood"):
        hvg._step_score("seurat_v3", counts, totals, None, span=0.3)
    # the chain goes on to a step without loess
    score, record = hvg._fit_batch(counts, totals, where="test", span=0.3, fallback_span=0.6,
                                   fallback_min_cells=3)  # fmt: skip
    assert record["step"] == "pearson_residuals" and np.isfinite(score).all()
