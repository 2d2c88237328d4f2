"""Generated extremes for the steps after QC (issue 13): tiny data sets, types missing from an
arm, samples that lose most of their cells. Each step works, falls back with a logged and
recorded reason, or stops with a message that names the fix."""

import logging

import numpy as np
import pandas as pd
import pytest
from anndata import AnnData

from tmeflow.embed import _cluster as cluster


def embedding(n: int, seed: int = 0) -> AnnData:
    rng = np.random.default_rng(seed)
    a = AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n)]))
    a.obsm["X_scVI"] = rng.normal(size=(n, 4)).astype(np.float32)
    return a


# --- neighbours, UMAP, Leiden -------------------------------------------------------------


def test_fewer_cells_than_neighbours_caps_with_a_warning_and_records_it(caplog):
    a = embedding(8)
    with caplog.at_level(logging.WARNING, logger="tmeflow.embed._cluster"):
        cluster.embed_and_cluster(a, n_neighbors=15, resolution=1.0, seed=0)
    assert a.uns["cluster"]["n_neighbors"] == 7
    assert a.uns["cluster"]["n_neighbors_configured"] == 15
    assert "capped at 7" in a.uns["cluster"]["notes"][0]
    assert any("capped at 7" in r.getMessage() for r in caplog.records)
    assert a.obs["leiden"].notna().all()


def test_three_cells_cluster_with_random_umap_init():
    # scanpy's spectral UMAP initialisation failed: "Cannot use scipy.linalg.eigh for sparse A
    # with k >= N"
    a = embedding(3)
    sweep = cluster.embed_and_cluster(
        a, n_neighbors=15, sweep_resolutions=[0.5, 1.0], choice="stability", seed=0
    )
    assert np.isfinite(a.obsm["X_umap"]).all() and a.obsm["X_umap"].shape == (3, 2)
    assert a.uns["cluster"]["n_neighbors"] == 2
    assert any("UMAP initialised at random" in n for n in a.uns["cluster"]["notes"])
    assert sweep["chosen"].sum() == 1


@pytest.mark.parametrize("n", [1, 2])
def test_too_few_cells_give_one_cluster_with_a_reason(n, caplog):
    a = embedding(n)
    with caplog.at_level(logging.WARNING, logger="tmeflow.embed._cluster"):
        sweep = cluster.embed_and_cluster(
            a, n_neighbors=15, sweep_resolutions=[0.5, 1.0], choice="stability", seed=0
        )
    assert list(a.obs["leiden"].astype(str)) == ["0"] * n
    assert a.uns["cluster"]["n_clusters"] == 1
    assert "not clustered" in a.uns["cluster"]["notes"][0]
    assert any(f"only {n} cell" in r.getMessage() for r in caplog.records)
    assert a.obsm["X_umap"].shape == (n, 2)
    assert a.obsp["connectivities"].shape == (n, n)
    assert list(sweep["n_clusters"]) == [1, 1] and sweep["chosen"].sum() == 1


def test_no_cells_is_a_clear_error():
    with pytest.raises(ValueError, match="relax the QC"):
        cluster.embed_and_cluster(embedding(0))


def test_normal_size_records_no_adjustment():
    a = embedding(60)
    cluster.embed_and_cluster(a, n_neighbors=15, resolution=1.0, seed=0)
    assert "notes" not in a.uns["cluster"] and "n_neighbors_configured" not in a.uns["cluster"]


# --- composition ----------------------------------------------------------------------------


def cells(design: dict[str, tuple[str, dict[str, int]]]) -> AnnData:
    """Cells of ``{sample: (condition, {cell type: n})}``."""
    rows = [(s, c, t) for s, (c, d) in design.items() for t, n in d.items() for _ in range(n)]
    obs = pd.DataFrame(rows, columns=["sample", "condition", "cell_type"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    return AnnData(obs=obs)


def assert_every_nan_has_a_reason(table: pd.DataFrame) -> None:
    assert table["cell_type"].is_unique
    stats_cols = ["effect", "pvalue", "padj", "log2_ratio"]
    unexplained = table[table[stats_cols].isna().any(axis=1) & (table["note"] == "")]
    assert unexplained.empty, unexplained


EXTREME = {
    # T everywhere; "onlyRef" absent from the test arm; "gap" absent from one animal;
    # "single" in one animal only; r3 lost most cells in QC (4 cells)
    "r1": ("ctrl", {"T": 50, "B": 10, "onlyRef": 5, "gap": 4, "single": 0}),
    "r2": ("ctrl", {"T": 60, "B": 7, "onlyRef": 3, "gap": 0, "single": 3}),
    "r3": ("ctrl", {"T": 3, "B": 1}),
    "t1": ("trt", {"T": 40, "B": 12, "gap": 6}),
    "t2": ("trt", {"T": 30, "B": 9, "gap": 2}),
}


@pytest.mark.parametrize("method", ["logit_lm", "arcsine_lm"])
def test_composition_types_missing_from_arms_or_animals(method, caplog):
    from tmeflow.stats import _composition as composition

    props = composition.proportions(cells(EXTREME))
    np.testing.assert_allclose(props.groupby("sample")["fraction"].sum(), 1.0)
    with caplog.at_level(logging.WARNING, logger="tmeflow.stats._composition"):
        out = composition.compare_proportions(props, reference="ctrl", test="trt", method=method)
    assert sorted(out["cell_type"]) == ["B", "T", "gap", "onlyRef", "single"]
    assert out["pvalue"].notna().all()  # each type has a statistic: >= 2 animals per arm
    assert_every_nan_has_a_reason(out)
    row = out.set_index("cell_type").loc["onlyRef"]
    assert np.isnan(row["log2_ratio"]) and "no cells of this type in any 'trt'" in row["note"]
    assert any("'onlyRef'" in r.getMessage() for r in caplog.records)


def test_composition_one_animal_per_arm_is_descriptive_with_reasons():
    from tmeflow.stats import _composition as composition

    design = {"r1": ("ctrl", {"T": 5, "B": 1}), "t1": ("trt", {"T": 1})}
    props = composition.proportions(cells(design))
    np.testing.assert_allclose(props.groupby("sample")["fraction"].sum(), 1.0)
    out = composition.compare_proportions(props, reference="ctrl", test="trt")
    assert (out["method"] == composition.DESCRIPTIVE).all()
    assert_every_nan_has_a_reason(out)
    assert "no cells of this type in any 'trt'" in out.set_index("cell_type").loc["B", "note"]


def test_composition_zero_variance_arms_are_not_tested_with_a_warning(caplog):
    from tmeflow.stats import _composition as composition

    same = {"T": 10, "B": 10}
    design = {s: (c, same) for s, c in [("r1", "ctrl"), ("r2", "ctrl"), ("t1", "trt")]}
    design["t2"] = ("trt", same)
    props = composition.proportions(cells(design))
    with caplog.at_level(logging.WARNING, logger="tmeflow.stats._composition"):
        out = composition.compare_proportions(props, reference="ctrl", test="trt")
    assert out["pvalue"].isna().all() and out["note"].str.contains("no variation").all()
    assert_every_nan_has_a_reason(out)
    assert any("'T'" in r.getMessage() for r in caplog.records)


# --- GSEA -----------------------------------------------------------------------------------

GENES = [f"g{i}" for i in range(200)]
SETS = {"A": GENES[:20], "B": GENES[50:80], "C": GENES[100:130]}


def de_table(stat, genes=GENES) -> pd.DataFrame:
    return pd.DataFrame({"gene": genes, "stat": stat, "method": "pydeseq2"})


@pytest.mark.parametrize(
    ("case", "table", "reason"),
    [
        # gseapy ordered the genes arbitrarily and reported NES 6.8, p = 0
        ("all_equal", de_table(np.ones(200)), "same statistic"),
        # gseapy's Rust core panicked: "user-provided comparison function does not correctly
        # implement a total order" (pyo3_runtime.PanicException)
        ("all_zero", de_table(np.zeros(200)), "same statistic"),
        ("fewer_than_min_size", de_table(np.arange(4.0), GENES[:4]), "4 genes"),
        ("empty", pd.DataFrame(columns=["gene", "stat", "method"]), "empty DE table"),
        # KeyError "DE table lacks column(s) ['gene', 'stat']" before
        ("empty_no_header", pd.DataFrame(), "empty DE table"),
        ("no_stat", de_table(np.full(200, np.nan)), "0 genes"),
        (
            "no_set_ranked",
            de_table(np.linspace(-2, 2, 200), [f"h{i}" for i in range(200)]),
            "no gene set",
        ),
    ],
)
def test_gsea_degenerate_tables_are_empty_with_a_reason(case, table, reason, caplog, monkeypatch):
    import gseapy

    from tmeflow.stats import _gsea as gsea

    def offline(*args, **kwargs):  # pragma: no cover - must never be reached
        raise AssertionError("gseapy called on a degenerate table")

    monkeypatch.setattr(gseapy, "prerank", offline)
    with caplog.at_level(logging.WARNING, logger="tmeflow.stats._gsea"):
        out = gsea.prerank(table, SETS, cell_type=case, permutations=10, min_size=5)
    assert out.empty and list(out.columns) == gsea.GSEA_COLUMNS
    assert out.attrs["note"].startswith("not tested") and reason in out.attrs["note"]
    assert any(case in r.getMessage() and reason in r.getMessage() for r in caplog.records)
    summary = gsea.gsea_summary({case: out})
    assert reason in summary.loc[0, "note"]


def test_gsea_library_failure_names_the_cell_type(monkeypatch):
    import gseapy

    from tmeflow.stats import _gsea as gsea

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(gseapy, "prerank", broken)
    table = de_table(np.linspace(-2, 2, 200))
    with pytest.raises(RuntimeError, match=r"cell type 'TAM'.*gsea\.min_size"):
        gsea.prerank(table, SETS, cell_type="TAM", permutations=10, min_size=5)


# --- scVI -----------------------------------------------------------------------------------


def merged(sizes: list[int]) -> AnnData:
    """Merged, normalised counts of one sample per entry of ``sizes`` (cells)."""
    from tmeflow.embed import _integrate as integrate

    from ._synthetic import clustered_counts

    parts = []
    for i, n in enumerate(sizes):
        a = clustered_counts(n_per_group=max(n, 2), groups=("A",), n_batches=1, n_genes=40, seed=i)
        a = a[:n].copy()
        a.obs["sample"] = f"s{i}"
        a.obs_names = [f"s{i}_{j}" for j in range(n)]
        parts.append(a)
    return integrate.merge_samples(parts)


TINY_SCVI = {"n_latent": 2, "n_hidden": 8, "max_epochs": 2, "seed": 0, "threads": 1}


def test_scvi_under_20_cells_trains_on_all_without_early_stopping(caplog):
    # before: ValueError "Can't run Early Stopping with validation monitor with no validation
    # set" (9 cells: scVI's 90% split leaves no validation cell)
    from tmeflow.embed import _integrate as integrate

    a = merged([9])
    with caplog.at_level(logging.WARNING, logger="tmeflow.embed._integrate"):
        integrate.train_scvi(a, early_stopping=True, batch_size=4, **TINY_SCVI)
    assert np.isfinite(a.obsm["X_scVI"]).all() and a.obsm["X_scVI"].shape == (9, 2)
    rec = a.uns["scvi"]
    assert rec["early_stopping"] is False and rec["early_stopping_configured"] is True
    assert rec["train_size"] == 1.0
    # 9 cells in minibatches of 4 leave one alone (BatchNorm fails on it): raised to 5
    assert rec["batch_size"] == 5 and rec["batch_size_configured"] == 4
    assert any("trained on all 9 cells" in n for n in rec["notes"])
    assert any("trained on all 9 cells" in r.getMessage() for r in caplog.records)


def test_scvi_two_cells_train():
    # before: ValueError "num_samples should be a positive integer value, but got
    # num_samples=0" (scVI dropped both cells as a too-small last minibatch)
    from tmeflow.embed import _integrate as integrate

    a = merged([2])
    integrate.train_scvi(a, early_stopping=False, **TINY_SCVI)
    assert np.isfinite(a.obsm["X_scVI"]).all() and a.uns["scvi"]["train_size"] == 1.0


def test_scvi_one_cell_sample_and_a_last_minibatch_of_one(caplog):
    # 143 cells: scVI's 90% training split is 129 = 128 + 1 cells; scvi-tools moves the lone
    # cell to validation itself; the one-cell sample s1 is named
    from tmeflow.embed import _integrate as integrate

    a = merged([142, 1])
    with caplog.at_level(logging.WARNING, logger="tmeflow.embed._integrate"):
        integrate.train_scvi(a, early_stopping=True, patience=2, **TINY_SCVI)
    assert np.isfinite(a.obsm["X_scVI"]).all() and a.obsm["X_scVI"].shape == (143, 2)
    assert a.uns["scvi"]["batch_size"] == 128 and "train_size" not in a.uns["scvi"]
    assert "'s1': 1" in a.uns["scvi"]["notes"][0]
    assert any("'s1': 1" in r.getMessage() for r in caplog.records)


def test_scvi_data_smaller_than_a_batch_needs_no_adjustment():
    from tmeflow.embed import _integrate as integrate

    a = merged([25, 5])
    integrate.train_scvi(a, early_stopping=True, patience=2, **TINY_SCVI)
    assert np.isfinite(a.obsm["X_scVI"]).all()
    assert "notes" not in a.uns["scvi"] and a.uns["scvi"]["early_stopping"] is True


def test_scvi_one_cell_in_all_is_a_clear_error():
    from tmeflow.embed import _integrate as integrate

    with pytest.raises(ValueError, match=r"at least 2 cells.*'s0': 1.*relax the QC"):
        integrate.train_scvi(merged([1]), **TINY_SCVI)
