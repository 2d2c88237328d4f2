"""Unit tests for the cluster-aware doublet caller and the doublet consensus
(tmeflow.cells._doublets)."""

import logging

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow.cells import _doublets as doublets
from tmeflow.cells import _qc as qc


def _planted(
    *, n_cells: int = 300, n_dbl: int = 15, n_types: int = 4, n_genes: int = 400, seed: int = 1
):
    """Cells of ``n_types`` types plus ``n_dbl`` sums of two cells of different types (last)."""
    rng = np.random.default_rng(seed)
    profiles = []
    for k in range(n_types):
        p = rng.gamma(0.5, 1, n_genes)
        p[k * 30 : (k + 1) * 30] *= 10
        profiles.append(p / p.sum())
    types = np.arange(n_cells) % n_types
    X = np.array([rng.poisson(profiles[k] * rng.uniform(2000, 4000)) for k in types])
    dbl = []
    for _ in range(n_dbl):
        i = rng.integers(n_cells)
        dbl.append(X[i] + X[rng.choice(np.flatnonzero(types != types[i]))])
    X = np.vstack([X, *dbl]).astype(np.float32)
    truth = np.r_[np.zeros(n_cells, bool), np.ones(n_dbl, bool)]
    obs = pd.DataFrame({"sample": "s", "species": "mouse"}, index=[f"c{i}" for i in range(len(X))])
    return ad.AnnData(sp.csr_matrix(X), obs=obs), truth


def test_cluster_caller_catches_inter_cluster_doublets_and_keeps_singlets() -> None:
    a, truth = _planted()
    doublets.cluster_doublets(a, seed=0)
    pred = a.obs["predicted_doublet_cluster"].to_numpy()
    score = a.obs["doublet_score_cluster"].to_numpy()
    assert pred[truth].mean() >= 0.9
    assert pred[~truth].mean() <= 0.02
    assert np.median(score[truth]) > 0.9 > np.quantile(score[~truth], 0.95)
    info = a.uns["doublets_cluster"]["species"]["mouse"]
    assert not info["skipped"] and info["n_cluster_pairs_apart"] >= 1
    assert a.uns["doublets_cluster"]["seed"] == 0
    b, _ = _planted()
    doublets.cluster_doublets(b, seed=0)  # seeded: the same scores again
    np.testing.assert_array_equal(b.obs["doublet_score_cluster"], score)


def test_cluster_caller_runs_per_species_and_falls_back_for_a_small_one(caplog) -> None:
    mouse, truth = _planted()
    rng = np.random.default_rng(3)
    human = ad.AnnData(
        sp.csr_matrix(rng.poisson(5.0, (30, mouse.n_vars)).astype(np.float32)),
        obs=pd.DataFrame({"sample": "s", "species": "human"}, index=[f"h{i}" for i in range(30)]),
    )
    # two genomes: the human cells' counts on human features, the mouse cells' on mouse ones
    X = sp.block_diag([mouse.X, human.X]).tocsr()
    var = pd.DataFrame(
        {"species": ["mouse"] * mouse.n_vars + ["human"] * human.n_vars},
        index=[f"m{i}" for i in range(mouse.n_vars)] + [f"h{i}" for i in range(human.n_vars)],
    )
    a = ad.AnnData(X, obs=pd.concat([mouse.obs, human.obs]), var=var)
    with caplog.at_level(logging.WARNING, logger="tmeflow.cells._doublets"):
        doublets.cluster_doublets(a, seed=0)
    info = a.uns["doublets_cluster"]["species"]
    assert info["human"]["skipped"] and info["human"]["reason"] == "30 cells (< 50)"
    assert "species human" in caplog.text and "skipped" in caplog.text
    assert not info["mouse"]["skipped"]
    is_h = a.obs["species"].to_numpy() == "human"
    assert np.isnan(a.obs["doublet_score_cluster"].to_numpy()[is_h]).all()
    assert not a.obs["predicted_doublet_cluster"].to_numpy()[is_h].any()
    assert a.obs["predicted_doublet_cluster"].to_numpy()[~is_h][truth].mean() >= 0.9


def test_cluster_caller_one_cell_type_falls_back() -> None:
    rng = np.random.default_rng(0)
    p = rng.gamma(0.5, 1, 300)
    X = rng.poisson(np.outer(rng.uniform(2000, 4000, 200), p / p.sum())).astype(np.float32)
    a = ad.AnnData(sp.csr_matrix(X), obs=pd.DataFrame({"sample": "s"}, index=map(str, range(200))))
    doublets.cluster_doublets(a, seed=0)
    info = a.uns["doublets_cluster"]["species"]["all"]
    assert info["skipped"] and "one cell type" in info["reason"]
    assert not a.obs["predicted_doublet_cluster"].any()


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ("both_or_confident", [True, False, True, False, True, False, False]),
        ("either", [True, True, True, False, True, True, False]),
        ("both", [True, False, False, False, True, False, False]),
        ("scrublet", [True, True, False, False, True, False, False]),
        ("cluster", [True, False, True, False, False, True, False]),
    ],
)
def test_consensus_rules(rule: str, expected: list[bool]) -> None:
    # cells: both call / Scrublet only / cluster only (confident) / neither / not scored by
    # the cluster caller / cluster only (not confident) / a confident score below the
    # cluster caller's own threshold (not called by it)
    obs = pd.DataFrame(
        {
            "predicted_doublet_scrublet": [True, True, False, False, True, False, False],
            "doublet_score_cluster": [0.8, 0.1, 0.95, 0.2, np.nan, 0.7, 0.95],
            "predicted_doublet_cluster": [True, False, True, False, False, True, False],
        },
        index=list("abcdefg"),
    )
    a = ad.AnnData(obs=obs)
    doublets.consensus(a, rule=rule, confident=0.9)
    assert a.obs["predicted_doublet"].tolist() == expected
    assert a.uns["doublets_consensus"]["rule"] == rule
    with pytest.raises(ValueError, match="consensus rule"):
        doublets.consensus(a, rule="majority")


def test_call_doublets_small_sample_records_fallbacks() -> None:
    a, _ = _planted(n_cells=40, n_dbl=0)
    qc.qc_metrics(a)
    doublets.call_doublets(a, seed=0, min_counts=0, min_genes=0)
    assert a.uns["doublets"]["skipped"] is True  # Scrublet: < 100 cells
    assert a.uns["doublets_cluster"]["species"]["mouse"]["reason"] == "40 cells (< 50)"
    assert not a.obs["predicted_doublet"].any()
    kept, m = qc.filter_cells(a, min_counts=0, min_genes=0)
    assert m["doublets_cluster"] == 0 and "mouse: 40 cells" in m["doublet_cluster_fallback"]
    assert kept.n_obs == 40


def test_cluster_alone_calls_capped_highest_scores_first():
    """both_or_confident: the cluster-aware caller alone removes at most the cap (3% of 400
    scored droplets = 12), highest scores first; calls Scrublet confirms are not capped."""
    n = 400
    rng = np.random.default_rng(0)
    score = rng.uniform(0.0, 0.5, n)
    score[:40] = np.linspace(0.999, 0.95, 40)  # 40 confident calls of the cluster caller alone
    score[-1] = np.nan  # not scored
    clu = score >= 0.5
    scr = np.zeros(n, dtype=bool)
    scr[[100, 101]] = True  # Scrublet alone: needs the other caller
    scr[[30, 31]] = True  # both callers: removed whatever the cap
    adata = ad.AnnData(
        X=sp.csr_matrix((n, 1), dtype=np.float32),
        obs=pd.DataFrame(
            {
                "predicted_doublet_scrublet": scr,
                "doublet_score_cluster": score,
                "predicted_doublet_cluster": clu,
            },
            index=[f"c{i}" for i in range(n)],
        ),
    )
    doublets.consensus(adata, rule="both_or_confident", confident=0.9, cap=0.03)
    called = adata.obs["predicted_doublet"].to_numpy(bool)
    assert doublets.cluster_alone_cap(n - 1) == 12
    assert called[:12].all() and not called[12:30].any()  # the 12 highest of the 38 alone
    assert called[[30, 31]].all() and not called[[100, 101]].any()
    rec = adata.uns["doublets_consensus"]
    assert rec["n_cluster_alone_kept"] == 38 - 12 and rec["n_predicted"] == 14
    doublets.consensus(adata, rule="both_or_confident", confident=0.9, cap=1.0)
    assert adata.obs["predicted_doublet"].to_numpy(bool)[:40].all()
    # the loading-implied multiplet count takes over in a large sample (issue 27): the 10x
    # rate of 0.8% per 1,000 cells, not twice it: 20,000 droplets -> 16%, 5,000 -> 4%
    assert doublets.cluster_alone_cap(20_000) == 3_200
    assert doublets.cluster_alone_cap(5_000) == 200
    # qc.doublet_cluster_cap stays the floor of a small sample (1,000 droplets: 0.8% < 3%)
    assert doublets.cluster_alone_cap(1_000) == 30
    assert doublets.cluster_alone_cap(1_000, cap=0.001) == 8


def test_expected_multiplet_rate_is_the_10x_rule_of_thumb() -> None:
    assert doublets.expected_multiplet_rate(1_000) == pytest.approx(0.008)
    assert doublets.expected_multiplet_rate(10_000) == pytest.approx(0.08)
    assert doublets.expected_multiplet_rate(0) == 0.0
    assert doublets.expected_multiplet_rate(500_000) == 1.0


def _consensus_sample(n: int, n_called: int) -> ad.AnnData:
    """``n`` droplets; the first ``n_called`` both callers call (removed under every rule)."""
    called = np.arange(n) < n_called
    obs = pd.DataFrame(
        {
            "sample": "s",
            "species": "mouse",
            "total_counts": 5000.0,
            "n_genes_by_counts": 1500.0,
            "pct_counts_mt": 3.0,
            "predicted_doublet_scrublet": called,
            "doublet_score_cluster": np.where(called, 0.99, 0.01),
            "predicted_doublet_cluster": called,
        },
        index=[f"c{i}" for i in range(n)],
    )
    return ad.AnnData(X=sp.csr_matrix((n, 1), dtype=np.float32), obs=obs)


def test_qc_reports_doublet_shares_and_warns_beyond_the_loading(caplog) -> None:
    """The QC metrics give each caller's, the consensus' and the expected multiplet share;
    removal beyond 1.5x the loading's expectation is a warning (log and qc_warnings)."""
    # 2,000 droplets imply 1.6% multiplets (32 cells); 1.5x is 48: 40 removed is fine
    a = _consensus_sample(2_000, 40)
    doublets.consensus(a)
    with caplog.at_level(logging.WARNING, logger="tmeflow.cells._qc"):
        _, m = qc.filter_cells(a, nmads_counts=100, nmads_genes=100, nmads_mito=100)
    assert m["doublet_share_expected"] == pytest.approx(0.016)
    assert m["doublet_share_scrublet"] == pytest.approx(0.02)
    assert m["doublet_share_cluster"] == pytest.approx(0.02)
    assert m["doublet_share_consensus"] == pytest.approx(0.02)
    assert m["doublet_share_removed"] == pytest.approx(0.02)
    assert m["doublet_excess"] is False and m["qc_warnings"] == ""
    assert "doublet removal" not in caplog.text
    # 100 removed (5%) is over 3x the expectation
    b = _consensus_sample(2_000, 100)
    doublets.consensus(b)
    with caplog.at_level(logging.WARNING, logger="tmeflow.cells._qc"):
        _, m = qc.filter_cells(b, nmads_counts=100, nmads_genes=100, nmads_mito=100)
    assert m["doublet_excess"] is True
    assert "doublet removal 100 of 2000 (5.0%) exceeds 1.5x the 1.6%" in m["qc_warnings"]
    assert "doublet removal exceeds the loading" in caplog.text
    # a small sample: 3 of 300 is 1.0% against 0.24% expected, but fewer than 5 cells over
    c = _consensus_sample(300, 3)
    doublets.consensus(c)
    _, m = qc.filter_cells(c, nmads_counts=100, nmads_genes=100, nmads_mito=100)
    assert m["doublet_excess"] is False
    # the summary table carries the columns
    summary = qc.summary_table(
        ingest=pd.DataFrame({"sample": ["s"]}),
        species=pd.DataFrame({"sample": ["s"]}),
        metrics=pd.DataFrame([m]),
        conditions={"s": "control"},
    )
    assert {"doublet_share_expected", "doublet_share_consensus", "doublet_excess"} <= set(
        summary.columns
    )
