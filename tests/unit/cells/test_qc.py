"""Unit tests for tmeflow.cells._qc: metrics, MAD thresholds, per-group filtering, doublets."""

import contextlib
import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow.cells import _doublets as doublets
from tmeflow.cells import _qc as qc
from tmeflow.cells import _species as species
from tmeflow.core import _h5ad as h5ad

from .._fresh import fresh_python

MAD_NORMAL = 1.482602218505602  # 1 / Phi^-1(3/4)


def _obs_adata(obs: pd.DataFrame, n_vars: int = 3) -> ad.AnnData:
    X = sp.csr_matrix((len(obs), n_vars), dtype=np.float32)
    return ad.AnnData(X, obs=obs)


# ---------------------------------------------------------------------------- metrics
def test_qc_metrics_values_both_species_mito() -> None:
    names = ["GRCh38_MT-ND1", "GRCh38_AXL", "mm10_mt-Co1", "mm10_Axl", "GRCh38_MTOR"]
    X = np.array([[10, 90, 0, 0, 0], [0, 1, 30, 70, 0], [0, 0, 0, 0, 0], [5, 5, 5, 5, 80]])
    a = ad.AnnData(
        sp.csr_matrix(X.astype(np.float32)),
        obs=pd.DataFrame({"sample": "s"}, index=list("abcd")),
        var=pd.DataFrame(index=names),
    )
    species.assign_species(a, mode="xenograft")
    qc.qc_metrics(a)
    assert sp.issparse(a.X)
    assert a.var["mt"].tolist() == [True, False, True, False, False]  # MTOR is not mito
    assert a.obs["total_counts"].tolist() == [100, 101, 0, 100]
    assert a.obs["n_genes_by_counts"].tolist() == [2, 3, 0, 5]
    np.testing.assert_allclose(a.obs["pct_counts_mt"], [10.0, 100 * 30 / 101, 0.0, 10.0])


# ---------------------------------------------------------------------------- MAD
def test_mad_thresholds_known_numbers() -> None:
    v = np.array([1.0, 2.0, 3.0, 4.0, 100.0])  # median 3, raw MAD 1
    assert qc.mad_thresholds(v, nmads=2, side="lower") == pytest.approx(3 - 2 * MAD_NORMAL)
    assert qc.mad_thresholds(v, nmads=3, side="upper") == pytest.approx(3 + 3 * MAD_NORMAL)
    assert qc.mad_thresholds(v, nmads=3, side="upper", scale=1.0) == pytest.approx(6.0)
    # a zero MAD gives no bound instead of flagging every cell off the median
    assert qc.mad_thresholds(np.zeros(10), nmads=3, side="upper") == np.inf
    assert qc.mad_thresholds(np.ones(10), nmads=3, side="lower") == -np.inf
    with pytest.raises(ValueError, match="side"):
        qc.mad_thresholds(v, nmads=3, side="both")


# ---------------------------------------------------------------------------- filtering
def _healthy(n: int, rng: np.random.Generator, *, counts: float, sp_name: str) -> pd.DataFrame:
    total = np.round(np.exp(rng.normal(np.log(counts), 0.1, n)))
    return pd.DataFrame(
        {
            "sample": "s1",
            "species": sp_name,
            "total_counts": total,
            "n_genes_by_counts": np.round(total * 0.3),
            "pct_counts_mt": rng.uniform(2, 6, n),
            "predicted_doublet": False,
        }
    )


def test_filter_reasons_counting() -> None:
    rng = np.random.default_rng(0)
    obs = _healthy(40, rng, counts=10_000, sp_name="human")
    obs.loc[0, "total_counts"] = 300  # low counts only (genes stay high)
    obs.loc[1, "n_genes_by_counts"] = 150  # low genes only
    obs.loc[2, "pct_counts_mt"] = 30.0  # high mito only
    obs.loc[3, ["total_counts", "n_genes_by_counts", "pct_counts_mt"]] = [400, 100, 40.0]
    obs.loc[4, "predicted_doublet"] = True
    obs.loc[5, "species"] = "mixed"
    obs.index = [f"c{i}" for i in range(len(obs))]
    a = _obs_adata(obs)
    kept, m = qc.filter_cells(a, nmads_counts=100, nmads_genes=100, nmads_mito=100)
    assert m["sample"] == "s1"
    assert m["n_cells_in"] == 40
    assert m["removed_low_counts"] == 2
    assert m["removed_low_genes"] == 2
    assert m["removed_high_mito"] == 2
    assert m["removed_doublet"] == 1
    assert m["removed_mixed_species"] == 1
    assert m["n_removed"] == 6 and m["n_kept"] == 34
    assert m["n_human_kept"] == 34 and m["n_mouse_kept"] == 0
    assert m["threshold_min_counts_human"] == 500.0 and m["threshold_max_pct_mito_human"] == 25.0
    assert a.obs.loc["c3", ["qc_low_counts", "qc_low_genes", "qc_high_mito"]].tolist() == [
        True,
        True,
        True,
    ]
    assert not a.obs.loc["c3", "qc_doublet"]
    assert a.obs["qc_pass"].sum() == 34
    assert sorted(set(a.obs_names) - set(kept.obs_names)) == [f"c{i}" for i in range(6)]
    assert kept.uns["qc"]["params"]["min_counts"] == 500
    assert kept.uns["qc"]["metrics"]["n_kept"] == 34
    # switching reasons off keeps those cells
    _, m2 = qc.filter_cells(
        a,
        nmads_counts=100,
        nmads_genes=100,
        nmads_mito=100,
        remove_doublets=False,
        remove_mixed=False,
    )
    assert m2["removed_doublet"] == 0 and m2["removed_mixed_species"] == 0 and m2["n_kept"] == 36


def test_thresholds_per_species_group(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    human = _healthy(60, rng, counts=20_000, sp_name="human")
    mouse = _healthy(60, rng, counts=2_000, sp_name="mouse")
    human.loc[0, ["total_counts", "n_genes_by_counts"]] = [3000, 900]  # small for a human cell
    obs = pd.concat([human, mouse], ignore_index=True)
    obs.index = [f"c{i}" for i in range(len(obs))]
    floors = {"min_counts": 0, "min_genes": 0, "max_pct_mito": 100.0, "remove_doublets": False}
    a = _obs_adata(obs)
    kept, m = qc.filter_cells(a, **floors)
    x = np.log1p(human["total_counts"].to_numpy())
    med = np.median(x)
    expect = np.expm1(med - 5 * MAD_NORMAL * np.median(np.abs(x - med)))
    assert m["threshold_min_counts_human"] == pytest.approx(expect)
    assert m["threshold_min_counts_mouse"] < 2000 * 0.7 < m["threshold_min_counts_human"]
    assert a.obs["qc_low_counts"].tolist() == [True] + [False] * 119
    assert m["removed_low_counts"] == 1 and m["n_kept"] == 119
    assert m["n_human_kept"] == 59 and m["n_mouse_kept"] == 60
    assert set(kept.uns["qc"]["thresholds"]) == {"human", "mouse"}
    # pooled thresholds (no grouping) miss the small human cell
    _, pooled = qc.filter_cells(_obs_adata(obs), group_key=None, **floors)
    assert pooled["removed_low_counts"] == 0
    assert "threshold_min_counts_all" in pooled
    h5ad.write_h5ad(kept, tmp_path / "qc.h5ad")  # uns["qc"] must be writable
    assert h5ad.read_h5ad(tmp_path / "qc.h5ad").uns["qc"]["params"]["nmads_counts"] == 5.0


def test_zero_cells_kept_names_sample_reason_and_key() -> None:
    rng = np.random.default_rng(2)
    obs = _healthy(30, rng, counts=300, sp_name="mouse")  # every cell below min_counts=500
    obs["sample"] = "tumour_3"
    obs.index = [f"c{i}" for i in range(30)]
    with pytest.raises(ValueError) as exc:
        qc.filter_cells(_obs_adata(obs))
    msg = str(exc.value)
    assert "tumour_3" in msg and "low_counts" in msg and "qc.min_counts" in msg


def test_remove_doublets_needs_scores() -> None:
    obs = _healthy(30, np.random.default_rng(3), counts=5000, sp_name="mouse")
    obs = obs.drop(columns="predicted_doublet")
    obs.index = [f"c{i}" for i in range(30)]
    with pytest.raises(ValueError, match="detect_doublets"):
        qc.filter_cells(_obs_adata(obs))
    _, m = qc.filter_cells(_obs_adata(obs), remove_doublets=False)
    assert m["n_kept"] == 30


def test_filter_computes_metrics_when_missing() -> None:
    X = np.zeros((3, 300), dtype=np.float32)
    X[0, :250] = 4  # 1000 counts, 250 genes: passes the floors
    X[1, :100] = 10  # 1000 counts but 100 genes: low genes
    X[2, :250] = 1  # 250 counts: low counts
    a = ad.AnnData(sp.csr_matrix(X), obs=pd.DataFrame({"sample": "s"}, index=list("abc")))
    kept, m = qc.filter_cells(a, remove_doublets=False, min_group_cells=100)
    assert a.obs["total_counts"].tolist() == [1000, 1000, 250]
    assert list(kept.obs_names) == ["a"]
    assert m["removed_low_genes"] == 1 and m["removed_low_counts"] == 1


# ---------------------------------------------------------------------------- doublets
def test_detect_doublets_skips_tiny_samples(caplog: pytest.LogCaptureFixture) -> None:
    a = ad.AnnData(
        sp.csr_matrix(np.ones((20, 50), dtype=np.float32)),
        obs=pd.DataFrame({"sample": "tiny"}, index=[f"c{i}" for i in range(20)]),
    )
    with caplog.at_level(logging.WARNING, logger="tmeflow.cells._qc"):
        doublets.detect_doublets(a, seed=0)
    assert "doublet detection skipped" in caplog.text and "tiny" in caplog.text
    assert not a.obs["predicted_doublet"].any()
    assert a.obs["doublet_score"].tolist() == [0.0] * 20
    assert a.uns["doublets"]["skipped"] is True
    assert a.uns["doublets"]["expected_rate"] == 0.05  # Scrublet's default is the floor


def _with_planted_doublets(
    seed: int = 1, n_cells: int = 300, n_dbl: int = 30
) -> tuple[ad.AnnData, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_types, n_genes = 4, 500
    profiles = []
    for k in range(n_types):
        p = rng.gamma(0.5, 1, n_genes)
        p[k * 30 : (k + 1) * 30] *= 10
        profiles.append(p / p.sum())
    types = np.arange(n_cells) % n_types
    X = np.array([rng.poisson(profiles[k] * rng.uniform(2100, 3900)) for k in types])
    dbl = []
    for _ in range(n_dbl):
        i = rng.integers(n_cells)
        j = rng.choice(np.flatnonzero(types != types[i]))
        dbl.append(X[i] + X[j])
    X = np.vstack([X, np.array(dbl)])
    truth = np.r_[np.zeros(n_cells, bool), np.ones(n_dbl, bool)]
    obs = pd.DataFrame({"sample": "s"}, index=[f"c{i}" for i in range(len(X))])
    return ad.AnnData(sp.csr_matrix(X.astype(np.float32)), obs=obs), truth


def test_detect_doublets_finds_planted_doublets() -> None:
    a, truth = _with_planted_doublets()
    X_before = a.X.copy()
    doublets.detect_doublets(a, seed=0, expected_rate=0.1)
    pred = a.obs["predicted_doublet"].to_numpy()
    score = a.obs["doublet_score"].to_numpy()
    assert pred[truth].mean() >= 0.9  # planted heterotypic doublets are found
    assert pred[~truth].mean() <= 0.05  # few singlets called
    assert score[truth].min() > np.median(score[~truth])
    assert (a.X != X_before).nnz == 0  # counts untouched
    assert a.uns["doublets"]["seed"] == 0 and a.uns["doublets"]["expected_rate"] == 0.1
    b, _ = _with_planted_doublets()
    doublets.detect_doublets(b, seed=0, expected_rate=0.1)
    np.testing.assert_array_equal(b.obs["doublet_score"], a.obs["doublet_score"])


def test_scrublet_without_dense_zscores_matches_scanpys(monkeypatch) -> None:
    """The sparse z-score + implicitly centred PCA scores as scanpy's dense route does."""
    from scanpy.preprocessing._scrublet import pipeline

    seen = []
    real_pca = pipeline.pca

    def dense_pca(scrub, *args, **kwargs):
        x = scrub._counts_obs_norm
        seen.append(x.nnz == x.shape[0] * x.shape[1])  # every entry stored
        return real_pca(scrub, *args, **kwargs)

    lean, truth = _with_planted_doublets()
    doublets.detect_doublets(lean, seed=0, expected_rate=0.1)
    assert lean.uns["doublets"]["pca"] == "implicitly centred (sparse)"
    assert pipeline.pca is real_pca  # the swap is undone
    dense, _ = _with_planted_doublets()
    monkeypatch.setattr(pipeline, "pca", dense_pca)
    monkeypatch.setattr(doublets, "_sparse_zscore_pca", contextlib.nullcontext)
    doublets.detect_doublets(dense, seed=0, expected_rate=0.1)
    assert seen == [True]  # scanpy's route: a z-scored matrix with every entry stored
    np.testing.assert_allclose(
        lean.obs["doublet_score"], dense.obs["doublet_score"], rtol=0, atol=0.01
    )
    # ARPACK's numerics move scores by < 0.01: a call at the threshold may flip (1 of 330 here;
    # none of 9,000 on the simulated demo), the planted doublets are found either way
    differ = lean.obs["predicted_doublet"] != dense.obs["predicted_doublet"]
    assert differ.mean() <= 0.01
    assert lean.obs["predicted_doublet"].to_numpy()[truth].mean() >= 0.9


def test_scrublet_knn_is_exact_above_scanpys_pynndescent_size() -> None:
    """2,800 cells + 5,600 simulated: scanpy would switch to pynndescent; it is not loaded."""
    code = (
        "import sys; from tests.unit.cells.test_qc import _with_planted_doublets;"
        "from tmeflow import cells;"
        "a, truth = _with_planted_doublets(n_cells=2700, n_dbl=100);"
        "cells.detect_doublets(a, seed=0, expected_rate=0.05);"
        "pred = a.obs['predicted_doublet'].to_numpy();"
        "print('pynndescent' in sys.modules, pred[truth].mean(), pred[~truth].mean(),"
        " a.uns['doublets']['knn'])"
    )
    loaded, found, false, knn = fresh_python(code).split()
    assert loaded == "False" and knn == "exact"
    assert float(found) >= 0.9 and float(false) <= 0.02


def test_threshold_minimum_between_modes() -> None:
    rng = np.random.default_rng(0)
    v = np.r_[rng.normal(0.1, 0.03, 2000), rng.normal(0.6, 0.05, 1000)]
    t = doublets.threshold_minimum(v)
    assert 0.2 < t < 0.5
    with pytest.raises(RuntimeError):
        doublets.threshold_minimum(np.full(10, 0.3))


def test_zero_cells_allowed_is_reported_with_a_note(caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(2)
    obs = _healthy(30, rng, counts=300, sp_name="mouse")
    obs["sample"] = "tumour_3"
    obs.index = [f"c{i}" for i in range(30)]
    a = _obs_adata(obs)
    a.uns["ingest"] = {"path": "data/tumour_3.h5"}
    with caplog.at_level(logging.WARNING, logger="tmeflow.cells._qc"):
        kept, m = qc.filter_cells(a, remove_doublets=False, allow_empty=True)
    assert kept.n_obs == 0 and m["n_kept"] == 0 and m["removed_low_counts"] == 30
    assert m["note"].startswith("sample 'tumour_3' (input 'data/tumour_3.h5'): QC removed all 30")
    assert "Relax qc.min_counts / qc.nmads_counts" in m["note"]
    assert "left out of the analysis" in caplog.text
    assert a.uns["qc"]["metrics"]["note"] == m["note"]


def test_check_conditions_names_the_empty_condition() -> None:
    summary = pd.DataFrame(
        {"sample": ["c1", "c2", "t1", "t2"], "n_kept": [10, 0, 0, 0],
         "note": ["", "sample 'c2': QC removed all", "sample 't1': QC removed all", ""]}
    )  # fmt: skip
    cond = {"c1": "control", "c2": "control", "t1": "alectinib", "t2": "alectinib"}
    with pytest.raises(ValueError) as exc:
        qc.check_conditions(summary, cond)
    msg = str(exc.value)
    assert msg.startswith("condition 'alectinib' has no cells after QC in any of its samples")
    assert "(t1, t2)" in msg and "sample 't1': QC removed all" in msg
    assert "sample 't2': no cells" in msg
    qc.check_conditions(summary.assign(n_kept=[10, 0, 0, 5]), cond)  # one empty sample is fine


def test_check_conditions_accepts_a_one_condition_sheet() -> None:
    # issue 4: one mouse lung, no alectinib sample; only an emptied sheet condition fails
    one = pd.DataFrame({"sample": ["lung"], "n_kept": [1200], "note": [""]})
    qc.check_conditions(one, {"lung": "control"})
    two = pd.DataFrame({"sample": ["c1", "c2"], "n_kept": [0, 7], "note": ["", ""]})
    qc.check_conditions(two, {"c1": "control", "c2": "control"})
    with pytest.raises(ValueError, match="condition 'control' has no cells after QC"):
        qc.check_conditions(one.assign(n_kept=[0]), {"lung": "control"})


def test_summary_table_one_column_per_reason_in_order() -> None:
    ingest = pd.DataFrame([{"sample": "s1", "format": "10x_h5", "n_barcodes": 90_000,
                            "looks_raw": True, "cells_called": True,
                            "cell_calling_cutoff_umi": 812.0, "n_cells": 100}])  # fmt: skip
    sp_row = pd.DataFrame([{"sample": "s1", "n_human": 60, "n_mouse": 38, "n_mixed": 2}])
    metrics = pd.DataFrame([{"sample": "s1", "n_cells_in": 100, "removed_low_counts": 3,
                             "removed_low_genes": 1, "removed_high_mito": 2, "removed_doublet": 4,
                             "removed_mixed_species": 2, "n_removed": 9, "n_kept": 91,
                             "threshold_min_counts_human": 700.0, "n_cells_human": 60,
                             "note": ""}])  # fmt: skip
    out = qc.summary_table(ingest=ingest, species=sp_row, metrics=metrics, conditions={"s1": "c"})
    cols = list(out.columns)
    assert cols[:3] == ["sample", "condition", "format"]
    assert [c for c in cols if c.startswith("removed_")] == [f"removed_{r}" for r in qc.REASONS]
    assert cols.index("n_barcodes") < cols.index("n_cells_in") < cols.index("n_kept")
    assert cols[-1] == "note" and cols.count("n_cells_in") == 1 and "n_cells" not in cols
    assert out["cell_calling_cutoff_umi"].iat[0] == 812.0 and out["condition"].iat[0] == "c"


# ------------------------------------------------ small groups (issue 13: the vanished tumour)
def _few_tumour_cells_in_mito_poor_stroma(seed: int = 7) -> pd.DataFrame:
    """A treated xenograft: 108 mouse cells with ~0.1% mito reads and 6 human tumour cells
    with 3-5% mito reads (the shape that lost its whole tumour to the mouse cells' cut-off)."""
    rng = np.random.default_rng(seed)
    mouse = _healthy(108, rng, counts=4000, sp_name="mouse")
    mouse["pct_counts_mt"] = rng.uniform(0.05, 0.15, 108)
    human = _healthy(6, rng, counts=8000, sp_name="human")
    human["pct_counts_mt"] = [3.0, 3.4, 3.8, 4.2, 4.6, 5.0]
    obs = pd.concat([mouse, human])
    obs["sample"] = "alectinib_2"
    obs.index = [f"c{i}" for i in range(len(obs))]
    return obs


def test_small_group_gets_floors_not_the_other_species_thresholds(caplog) -> None:
    obs = _few_tumour_cells_in_mito_poor_stroma()
    with caplog.at_level(logging.WARNING, logger="tmeflow.cells._qc"):
        kept, m = qc.filter_cells(_obs_adata(obs), remove_doublets=False)
    human = kept.obs["species"].astype(str) == "human"
    assert int(human.sum()) == 6  # every tumour cell stays (3-5% mito is healthy)
    th = kept.uns["qc"]["thresholds"]
    assert th["human"]["mad_source"] == "floors" and th["human"]["max_pct_mito"] == 25.0
    assert th["mouse"]["mad_source"] == "group" and th["mouse"]["max_pct_mito"] < 1.0
    assert "too few for MAD thresholds" in caplog.text and "alectinib_2" in caplog.text
    assert m["qc_warnings"] == ""


def test_group_mostly_removed_is_warned_and_listed(caplog) -> None:
    obs = _few_tumour_cells_in_mito_poor_stroma()
    obs.loc[obs["species"] == "human", "pct_counts_mt"] = 40.0  # above the 25% floor
    with caplog.at_level(logging.WARNING, logger="tmeflow.cells._qc"):
        kept, m = qc.filter_cells(_obs_adata(obs), remove_doublets=False)
    assert (kept.obs["species"].astype(str) == "human").sum() == 0
    assert m["qc_warnings"] == "alectinib_2.human: removed 6 of 6 (high_mito 6)"
    assert "QC removes 6 of 6 cells" in caplog.text


def test_cell_table_columns_in_order() -> None:
    obs = pd.DataFrame(
        {
            "qc_zeta": [True, False],
            "condition": ["a", "a"],
            "qc_pass": [True, False],
            "total_counts": [10.0, 2.0],
            "sample": ["s1", "s1"],
            "qc_alpha": [False, True],
        },
        index=["c1", "c2"],
    )
    table = qc.cell_table(obs)
    assert list(table.columns) == ["sample", "total_counts", "qc_pass", "qc_alpha", "qc_zeta"]
    assert list(table.index) == ["c1", "c2"]
    table.loc["c1", "sample"] = "changed"
    assert obs.loc["c1", "sample"] == "s1"


def test_scrublet_failure_skips_with_a_recorded_reason(monkeypatch, caplog) -> None:
    """Issue 13: a Scrublet failure inside scanpy is logged and recorded, not a traceback."""
    import scanpy as sc

    def broken(*args, **kwargs):
        raise ValueError("n_components=30 must be between 1 and min(n_samples, n_features)")

    a, _ = _with_planted_doublets()
    monkeypatch.setattr(sc.pp, "scrublet", broken)
    with caplog.at_level(logging.WARNING, logger="tmeflow.cells._doublets"):
        doublets.detect_doublets(a, seed=0)
    assert a.uns["doublets"]["skipped"] is True
    assert "Scrublet failed (ValueError: n_components" in a.uns["doublets"]["reason"]
    assert not a.obs["predicted_doublet"].any() and "skipped" in caplog.text


def test_summary_names_the_features_a_sample_did_not_measure(tmp_path) -> None:
    """Issue 13: samples counted against different references are named in the QC summary."""
    a = ad.AnnData(sp.csr_matrix((2, 3), dtype=np.float32))
    a.var_names = ["Gas6", "Mmp11", "Axl"]
    h5ad.write_h5ad(a, tmp_path / "a.h5ad")
    assert h5ad.read_var_names(tmp_path / "a.h5ad") == ["Gas6", "Mmp11", "Axl"]
    rows = pd.DataFrame({"sample": ["a", "b"], "n_cells_in": 2, "n_kept": 2, "note": ""})
    out = qc.summary_table(
        ingest=pd.DataFrame({"sample": ["a", "b"]}),
        species=pd.DataFrame({"sample": ["a", "b"]}),
        metrics=rows,
        conditions={"a": "c", "b": "t"},
        features={"a": ["Gas6", "Mmp11", "Axl"], "b": ["Gas6", "Axl"]},
    ).set_index("sample")
    assert out.loc["a", "n_features_missing"] == 0
    assert out.loc["b", "n_features_missing"] == 1
    assert out.loc["b", "features_missing_examples"] == "Mmp11"
