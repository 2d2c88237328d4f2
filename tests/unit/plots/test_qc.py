"""Tests of tmeflow.plots.qc: per-sample QC figure and the contamination figure."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tmeflow.cells._cross_species import AmbientModel
from tmeflow.plots import qc


def _cells(n: int = 80, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sp_ = np.where(np.arange(n) % 2 == 0, "human", "mouse")
    return pd.DataFrame(
        {
            "sample": "s1",
            "species": sp_,
            "total_counts": rng.lognormal(8, 0.5, n),
            "n_genes_by_counts": rng.lognormal(7, 0.4, n),
            "pct_counts_mt": rng.uniform(0, 20, n),
            "qc_pass": rng.uniform(size=n) > 0.2,
        }
    )


METRICS = {"sample": "s1", "n_cells_in": 80, "n_kept": 64, "removed_low_counts": 10,
           "removed_doublet": 0, "removed_high_mito": 6, "threshold_min_counts_human": 900.0,
           "threshold_min_counts_mouse": 700.0, "threshold_max_pct_mito_human": 15.0}  # fmt: skip


def test_thresholds_and_explanation_from_metrics() -> None:
    assert qc._thresholds(METRICS, "min_counts") == {"human": 900.0, "mouse": 700.0}
    assert qc._thresholds(METRICS, "min_genes") == {}
    text = qc._explanation(METRICS)
    assert text == "80 cells in, 64 kept; removed: low counts 10, high mito 6"


def test_qc_sample_plot_is_deterministic(tmp_path: Path) -> None:
    a = qc.qc_sample_plot(_cells(), METRICS, sample="s1", stem=tmp_path / "a" / "s1")
    b = qc.qc_sample_plot(_cells(), METRICS, sample="s1", stem=tmp_path / "b" / "s1")
    assert [p.name for p in a] == ["s1.pdf", "s1.png"]
    for x, y in zip(a, b, strict=True):
        assert x.stat().st_size > 1000 and x.read_bytes() == y.read_bytes()
    # a sample left without cells still gets its figure (all cells, none passing)
    empty = _cells().assign(qc_pass=False)
    qc.qc_sample_plot(empty, {**METRICS, "n_kept": 0}, sample="s1", stem=tmp_path / "e")
    assert (tmp_path / "e.png").stat().st_size > 1000
    with pytest.raises(ValueError, match="qc_pass"):
        qc.qc_sample_plot(_cells().drop(columns="qc_pass"), METRICS, sample="s1",
                               stem=tmp_path / "x")  # fmt: skip


def test_contamination_plot_with_and_without_estimates(tmp_path: Path) -> None:
    summary = pd.DataFrame(
        {"sample": ["a", "b"], "contamination_mouse_in_human_median": [0.01, np.nan],
         "contamination_mouse_in_human_mean": [0.02, np.nan],
         "contamination_human_in_mouse_median": [0.03, 0.04],
         "contamination_human_in_mouse_mean": [0.03, 0.05]}
    )  # fmt: skip
    out = qc.contamination_plot(summary, stem=tmp_path / "cont")
    assert all(p.stat().st_size > 1000 for p in out)
    none = qc.contamination_plot(pd.DataFrame({"sample": ["a"]}), stem=tmp_path / "none")
    assert none[0].read_bytes() != out[0].read_bytes()


def test_contamination_samples_by_arm_then_naturally(tmp_path: Path) -> None:
    """Samples are drawn reference arm first, then naturally (ctrl_2 before ctrl_10), whatever
    the order of the summary's rows; without a condition column, naturally."""
    ordered = pd.DataFrame(
        {"sample": ["ctrl_2", "ctrl_10", "alec_1", "alec_3"],
         "condition": ["ctrl", "ctrl", "alectinib", "alectinib"],
         "contamination_mouse_in_human_median": [0.01, 0.02, 0.03, 0.04],
         "contamination_human_in_mouse_median": [0.05, 0.06, 0.07, 0.08]}
    )  # fmt: skip
    alphabetical = ordered.sort_values("sample")  # as results/qc/summary.tsv lists them
    assert alphabetical["sample"].tolist() == ["alec_1", "alec_3", "ctrl_10", "ctrl_2"]
    want = qc.contamination_plot(ordered, stem=tmp_path / "want", conditions=["ctrl", "alectinib"])
    got = qc.contamination_plot(
        alphabetical, stem=tmp_path / "got", conditions=["ctrl", "alectinib"]
    )
    assert got[1].read_bytes() == want[1].read_bytes()
    flipped = qc.contamination_plot(ordered, stem=tmp_path / "f", conditions=["alectinib", "ctrl"])
    assert flipped[1].read_bytes() != want[1].read_bytes()
    natural = ordered.drop(columns="condition")
    a = qc.contamination_plot(natural.iloc[[1, 0, 3, 2]], stem=tmp_path / "a")
    b = qc.contamination_plot(natural.iloc[[2, 3, 0, 1]], stem=tmp_path / "b")
    assert a[1].read_bytes() == b[1].read_bytes()


def _species_obs(seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """A xenograft sample's species obs and ambient model: singlets with 1% ambient and
    doublets whose minor cell gives 5-40% of the UMIs."""
    import anndata as ad
    import scipy.sparse as sp

    from tmeflow.cells import _species as species

    rng = np.random.default_rng(seed)
    n = 200
    tot = rng.lognormal(np.log(6000), 0.5, n).astype(int)
    minor = np.where(np.arange(n) < 30, rng.uniform(0.05, 0.4, n), rng.beta(5, 495, n))
    other = rng.binomial(tot, minor)
    human = np.arange(n) % 2 == 0
    X = np.c_[np.where(human, tot - other, other), np.where(human, other, tot - other)]
    a = ad.AnnData(
        sp.csr_matrix(X.astype(np.float32)),
        obs=pd.DataFrame({"sample": "s1"}, index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=["GRCh38_GAS6", "mm10_Gas6"]),
    )
    species.assign_species(a, mode="xenograft", crossspecies_fdr=0.01)
    return a.obs, a.uns["species"]["ambient"]


def test_crossspecies_plot_and_boundary(tmp_path: Path) -> None:
    obs, model = _species_obs()
    a = qc.crossspecies_plot(obs, model, stem=tmp_path / "a" / "s1", sample="s1")
    b = qc.crossspecies_plot(obs, model, stem=tmp_path / "b" / "s1", sample="s1")
    assert [p.name for p in a] == ["s1.pdf", "s1.png"]
    for x, y in zip(a, b, strict=True):
        assert x.stat().st_size > 1000 and x.read_bytes() == y.read_bytes()
    # the drawn boundary separates the calls: called droplets lie on or above it
    called = (obs["crossspecies_q"] < model["fdr"]).to_numpy()
    assert called.sum() >= 25
    p_star = obs["crossspecies_p"].to_numpy()[called].max()
    n = (obs["n_counts_human"] + obs["n_counts_mouse"]).to_numpy().astype(np.int64)
    other = obs["n_counts_other"].to_numpy()
    for sp_ in ("human", "mouse"):
        sel = (obs["dominant_species"] == sp_).to_numpy()
        k = qc._boundary(AmbientModel.from_dict(model), sp_, p_star, n[sel])
        assert (other[sel][called[sel]] >= k[called[sel]]).all()
        assert (other[sel][~called[sel]] < k[~called[sel]]).all()
    none = qc.crossspecies_plot(obs, None, stem=tmp_path / "none", sample="s1")
    assert none[0].read_bytes() != a[0].read_bytes()


def test_crossspecies_boundary_follows_a_size_dependent_soup():
    """A PDX-like soup (count ~ size^0.25): small droplets carry a larger share, so the drawn
    boundary's other-species share falls with size (a constant rate would keep it flat)."""
    model = AmbientModel(
        rate={"mouse": 0.033}, concentration={"mouse": np.inf}, exponent={"mouse": 0.25},
        ref_size={"mouse": 2000.0},
    )  # fmt: skip
    n = np.array([200, 2000, 20000])
    share = qc._boundary(model, "mouse", 1e-4, n) / n
    assert share[0] > share[1] > share[2]
    flat = AmbientModel(rate={"mouse": 0.033}, concentration={"mouse": np.inf})
    flat_share = qc._boundary(flat, "mouse", 1e-4, n) / n
    assert flat_share[2] == pytest.approx(0.033, rel=0.2)
    assert share[0] > 2 * flat_share[0]  # the small droplet: a higher bar than a flat rate
