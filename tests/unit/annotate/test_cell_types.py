"""Marker-based annotation on synthetic clusters with known identities."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml

from tmeflow.annotate import _cell_types as annotate
from tmeflow.annotate import _scoring as annotate_groups
from tmeflow.embed import _integrate as integrate

from .._synthetic import clustered_counts

REPO = Path(__file__).resolve().parents[3]

PANEL = {
    "cell_types": {
        "tumor": {"species": "human", "markers": ["g100"], "source": "test"},
        "CAF": {
            "species": "mouse",
            "markers": ["g0", "g1", "g2", "g3", "g4"],
            "source": "test",
            "subtypes": {
                "myCAF": {"markers": ["g30", "g31", "g32"], "source": "test"},
                "iCAF": {"markers": ["g40", "g41", "g42"], "source": "test"},
            },
        },
        "TAM": {"species": "mouse", "markers": ["g10", "g11", "g12", "g13"], "source": "test"},
        "B": {"species": "mouse", "markers": ["g20", "g21", "g22", "absent1"], "source": "test"},
        "T": {"species": "mouse", "markers": ["absent2", "absent3"], "source": "test"},
    }
}


def labelled(seed=0):
    """Groups A/B/C carry the CAF/TAM/B markers; CAF splits into myCAF/iCAF halves."""
    adata = clustered_counts(n_per_group=120, n_genes=150, seed=seed)
    x = adata.X.toarray()
    rng = np.random.default_rng(seed)
    caf = np.flatnonzero(adata.obs["group"] == "A")
    my, ic = caf[: len(caf) // 2], caf[len(caf) // 2 :]
    x[np.ix_(my, [30, 31, 32])] += rng.poisson(40, (len(my), 3))
    x[np.ix_(ic, [40, 41, 42])] += rng.poisson(40, (len(ic), 3))
    adata.X = x.astype(np.float32)
    adata.obs["true_subtype"] = adata.obs["group"].map({"A": "CAF", "B": "TAM", "C": "B"})
    adata.obs.loc[adata.obs_names[my], "true_subtype"] = "myCAF"
    adata.obs.loc[adata.obs_names[ic], "true_subtype"] = "iCAF"
    integrate.normalise(adata)
    adata.obs["leiden"] = adata.obs["group"].map({"A": "0", "B": "1", "C": "2"}).astype("category")
    # a 2-d embedding where the CAF subtypes are apart, for the re-clustering
    emb = rng.normal(0, 0.3, (adata.n_obs, 2))
    emb[my] += [5, 0]
    emb[ic] += [0, 5]
    adata.obsm["X_scVI"] = emb.astype(np.float32)
    adata.obs["species"] = "mouse"
    return adata


def test_clusters_get_their_marker_labels_and_subtypes():
    adata = labelled()
    table = annotate.annotate(adata, PANEL, species_mode="mouse", subcluster_resolution=0.3)
    truth = adata.obs["group"].map({"A": "CAF", "B": "TAM", "C": "B"})
    assert (adata.obs["cell_type"].astype(str) == truth).all()
    caf = adata.obs["cell_type"] == "CAF"
    acc = (adata.obs.loc[caf, "cell_subtype"] == adata.obs.loc[caf, "true_subtype"]).mean()
    assert acc >= 0.95
    top = table[table["level"] == "cell_type"].set_index("group")
    assert top.loc["0", "label"] == "CAF" and top.loc["0", "margin"] > 0.5
    assert "score_T" not in adata.obs or adata.obs["score_T"].isna().all()
    assert set(adata.obs.columns) >= {"score_CAF", "score_TAM", "score_myCAF"}
    assert adata.uns["annotation"]["sources"]["CAF"] == "test"


def test_annotating_a_read_back_object_again_replaces_its_subclusters(tmp_path):
    """The sensitivity settings annotate annotated.h5ad again: its subcluster column comes back
    categorical, and a finer re-clustering makes subclusters it has never seen."""
    adata = labelled()
    annotate.annotate(adata, PANEL, species_mode="mouse", subcluster_resolution=0.3)
    adata.write_h5ad(tmp_path / "annotated.h5ad")
    back = ad.read_h5ad(tmp_path / "annotated.h5ad")
    assert isinstance(back.obs["subcluster"].dtype, pd.CategoricalDtype)
    before = set(back.obs["subcluster"].dropna().astype(str))
    annotate.annotate(back, PANEL, species_mode="mouse", subcluster_resolution=3.0)
    after = set(back.obs["subcluster"].dropna().astype(str))
    assert after - before  # new subclusters, written
    fresh = labelled()
    annotate.annotate(fresh, PANEL, species_mode="mouse", subcluster_resolution=3.0)
    pd.testing.assert_series_equal(
        back.obs["subcluster"].astype(object), fresh.obs["subcluster"].astype(object)
    )


def test_low_confidence_cluster_is_unassigned():
    adata = labelled()
    # a cluster mixing TAM and B cells half and half has no clear winner
    mixed = adata.obs["group"].isin(["B", "C"])
    adata.obs["leiden"] = np.where(mixed, "1", "0")
    annotate.annotate(adata, PANEL, species_mode="mouse", min_margin=0.3, refine_fraction=0)
    assert (adata.obs.loc[mixed, "cell_type"] == "unassigned").all()


def test_mixed_cluster_is_split_when_its_parts_are_apart():
    adata = labelled()
    mixed = adata.obs["group"].isin(["B", "C"]).to_numpy()
    adata.obs["leiden"] = np.where(mixed, "1", "0")
    # the embedding separates the TAM and B halves of the mixed cluster
    emb = adata.obsm["X_scVI"].copy()
    emb[(adata.obs["group"] == "C").to_numpy()] += [-6, -6]
    adata.obsm["X_scVI"] = emb
    table = annotate.annotate(
        adata, PANEL, species_mode="mouse", min_margin=0.3, refine_resolution=0.3
    )
    truth = adata.obs["group"].map({"A": "CAF", "B": "TAM", "C": "B"}).astype(str)
    assert (adata.obs["cell_type"].astype(str) == truth).mean() >= 0.98
    groups = adata.obs["annotation_group"].astype(str)
    assert groups[mixed].str.startswith("1:").all() and (groups[~mixed] == "0").all()
    assert adata.uns["annotation"]["refined_clusters"] == ["1"]
    refined = table[table["level"] == "refined"]
    assert set(refined["label"]) == {"TAM", "B"} and refined["group"].str.startswith("1:").all()


def test_refinement_leaves_pure_clusters_and_unsplittable_mixtures_alone():
    adata = labelled()
    annotate.annotate(adata, PANEL, species_mode="mouse", refine_resolution=0.3)
    assert adata.uns["annotation"]["refined_clusters"] == []
    assert (adata.obs["annotation_group"].astype(str) == adata.obs["leiden"].astype(str)).all()
    # a mixture the embedding cannot separate stays one (unassigned) group
    mixed = adata.obs["group"].isin(["B", "C"]).to_numpy()
    adata.obs["leiden"] = np.where(mixed, "1", "0")
    noise = np.random.default_rng(1).normal(0, 0.3, adata.obsm["X_scVI"].shape)
    adata.obsm["X_scVI"] = noise.astype(np.float32)
    annotate.annotate(adata, PANEL, species_mode="mouse", min_margin=0.3)
    assert (adata.obs.loc[mixed, "cell_type"] == "unassigned").all()


def test_cell_best_labels_maps_parents_and_thresholds():
    scores = pd.DataFrame(
        {"TAM": [0.1, 2.0, np.nan], "alveolar": [1.5, 0.2, np.nan], "B": [0.0, 0.1, 0.3]},
        index=["a", "b", "c"],
    )
    best = annotate_groups.cell_best_labels(scores, min_score=0.5, parent={"alveolar": "TAM"})
    assert best["a"] == "TAM" and best["b"] == "TAM" and pd.isna(best["c"])


def test_xenograft_human_cells_are_tumour():
    adata = labelled()
    human = adata.obs_names[:10]
    adata.obs.loc[human, "species"] = "human"
    annotate.annotate(adata, PANEL, species_mode="xenograft")
    assert (adata.obs.loc[human, "cell_type"] == "tumor").all()
    assert (adata.obs.loc[adata.obs_names[10:], "cell_type"] != "tumor").all()


def _human(panel: dict) -> dict:
    """The panel with every entry human (a human-only panel such as human_tme.yaml)."""
    return {"cell_types": {k: {**v, "species": "human"} for k, v in panel["cell_types"].items()}}


def test_human_only_cells_get_the_whole_human_panel():
    adata = labelled()
    adata.obs["species"] = "human"
    annotate.annotate(adata, _human(PANEL), species_mode="human", subcluster_resolution=0.3)
    truth = adata.obs["group"].map({"A": "CAF", "B": "TAM", "C": "B"})
    assert (adata.obs["cell_type"].astype(str) == truth).all()
    caf = adata.obs["cell_type"] == "CAF"
    assert set(adata.obs.loc[caf, "cell_subtype"].astype(str)) == {"myCAF", "iCAF"}
    # with the default panel (only `tumor` is human) a human run has nothing else to give
    back = labelled()
    annotate.annotate(back, PANEL, species_mode="human")
    assert set(back.obs["cell_type"].astype(str)) <= {"tumor", "unassigned"}


def test_xenograft_human_cells_are_tumour_only_while_the_panel_says_so():
    shipped = REPO / "config" / "markers"
    from tmeflow.core import load_panels

    default = load_panels([shipped / "mouse_tme.yaml"])
    states = load_panels([shipped / "mouse_tme.yaml", shipped / "human_tumor_states.yaml"])
    assert annotate.human_cells_are_tumour(default, "xenograft")
    assert annotate.human_cells_are_tumour(states, "xenograft")
    assert not annotate.human_cells_are_tumour(default, "human")
    # a patient-derived graft's human stroma, under a label of its own: scored, not tumour
    pdx = yaml.safe_load(yaml.safe_dump(PANEL))
    for label in ("CAF", "TAM"):
        pdx["cell_types"][f"{label}_human"] = {**pdx["cell_types"].pop(label), "species": "human"}
    assert not annotate.human_cells_are_tumour(pdx, "xenograft")
    adata = labelled()
    adata.obs["species"] = np.where(adata.obs["group"] == "C", "mouse", "human")
    annotate.annotate(adata, pdx, species_mode="xenograft", refine_fraction=0)
    human = adata.obs["species"] == "human"
    truth = adata.obs.loc[human, "group"].map({"A": "CAF_human", "B": "TAM_human"})
    assert (adata.obs.loc[human, "cell_type"].astype(str) == truth).all()
    assert not adata.obs.loc[~human, "cell_type"].isin(["CAF_human", "TAM_human", "tumor"]).any()


def test_xenograft_requires_species():
    adata = labelled()
    del adata.obs["species"]
    with pytest.raises(ValueError, match="species assignment"):
        annotate.annotate(adata, PANEL, species_mode="xenograft")


def test_score_cells_zscores_within_mask():
    adata = labelled()
    mask = (adata.obs["group"] != "C").to_numpy()
    scores = annotate.score_cells(adata, {"B": ["g20"], "none": ["absent"]}, mask=mask)
    assert scores.loc[~mask].isna().all().all()
    assert scores["none"].isna().all()
    assert abs(scores.loc[mask, "B"].mean()) < 1e-9


def test_assign_groups_reports_margin():
    scores = pd.DataFrame({"a": [2.0, 2.0, 0.0], "b": [0.0, 0.5, 0.1]}, index=["x", "y", "z"])
    groups = pd.Series(["1", "1", "2"], index=scores.index)
    table = annotate.assign_groups(scores, groups, min_score=0.5, min_margin=0.1).set_index("group")
    assert table.loc["1", "label"] == "a"
    assert table.loc["1", "margin"] == pytest.approx(2.0 - 0.25)
    assert table.loc["2", "label"] == "unassigned"  # best score 0.1 < min_score


def minority_scores(rng, n_high=6, n_nk=20, n_t=19):
    """Per-cell scores of a heart-like cluster: a few cells with very high TAM scores (a rare
    type has large z-scores) among more numerous NK- and T-like cells."""
    n = n_high + n_nk + n_t
    scores = pd.DataFrame(rng.normal(0, 0.05, (n, 3)), columns=["TAM", "NK", "T"])
    scores.iloc[:n_high, 0] += 8.0
    scores.iloc[n_high : n_high + n_nk, 1] += 1.0
    scores.iloc[n_high + n_nk :, 2] += 0.9
    scores.index = [f"c{i}" for i in range(n)]
    return scores


def test_a_high_scoring_minority_does_not_label_its_cluster():
    rng = np.random.default_rng(0)
    scores = minority_scores(rng)
    groups = pd.Series("1", index=scores.index)
    row = annotate.assign_groups(scores, groups, min_score=0.5, min_margin=0.1).iloc[0]
    # the mean favours TAM (about 1.07 against 0.44 for NK), but 6 of 45 cells are not a label
    assert row["best_label"] == "TAM" and row["margin"] > 0.5
    assert not row["plurality"] and row["label"] == "unassigned"
    assert row["support"] == pytest.approx(6 / 45)
    # the same cells with TAM as the most common per-cell label are labelled TAM
    scores = minority_scores(rng, n_high=20, n_nk=12, n_t=13)
    row = annotate.assign_groups(scores, groups, min_score=0.5, min_margin=0.1).iloc[0]
    assert row["plurality"] and row["label"] == "TAM"


def test_refinement_unassigns_a_part_that_is_not_the_cluster_type():
    """A cluster labelled TAM whose separable part scores for no label confidently (NK and T
    alike) and not for TAM loses the TAM label instead of keeping it."""
    rng = np.random.default_rng(0)
    n_tam, n_other = 30, 16
    n = n_tam + n_other
    scores = pd.DataFrame(rng.normal(0, 0.1, (n, 3)), columns=["TAM", "NK", "T"])
    scores.iloc[:n_tam, 0] += 1.5
    scores.iloc[n_tam::2, 1] += 0.9  # the other part: NK- and T-like cells, equally
    scores.iloc[n_tam + 1 :: 2, 2] += 0.9
    scores.index = [f"c{i}" for i in range(n)]
    emb = rng.normal(0, 0.3, (n, 2))
    emb[n_tam:] += 6.0
    adata = ad.AnnData(obs=pd.DataFrame(index=scores.index), obsm={"X_scVI": emb})
    clusters = pd.Series("1", index=scores.index)
    groups, table = annotate.refine_mixed(
        adata, scores, clusters, {"1": "TAM"}, min_score=0.5, min_margin=0.3, resolution=0.3
    )
    label = groups.map(dict(zip(table["group"], table["label"], strict=True)))
    assert (label.iloc[:n_tam] == "TAM").mean() >= 0.95, table
    assert (label.iloc[n_tam:] == "unassigned").mean() >= 0.95, table
    assert (table.loc[table["label"] == "unassigned", "p_own"] <= 0.01).all()


def state_panel():
    panel = yaml.safe_load(yaml.safe_dump(PANEL))
    panel["cell_types"]["CAF"]["subtypes"]["CAF_IFN"] = {
        "markers": ["g50", "g51", "g52"],
        "source": "test",
        "state": True,
    }
    return panel


def test_state_programme_does_not_steal_identity_subtypes():
    """An interferon-like programme in half of each CAF subtype (one 'arm') marks those cells
    in cell_state but leaves myCAF/iCAF as the subtype."""
    adata = labelled()
    caf = np.flatnonzero(adata.obs["group"] == "A")
    arm = caf[::2]  # half of the myCAF and half of the iCAF cells
    adata.X = adata.X.toarray()
    adata.X[np.ix_(arm, [50, 51, 52])] += 4.0
    # the arm's cells sit apart in a third embedding dimension, so they form own subclusters
    arm_axis = np.zeros((adata.n_obs, 1), dtype=np.float32)
    arm_axis[arm] = 5.0
    adata.obsm["X_scVI"] = np.hstack([adata.obsm["X_scVI"], arm_axis])
    table = annotate.annotate(adata, state_panel(), species_mode="mouse", subcluster_resolution=0.3)
    cafs = adata.obs["cell_type"] == "CAF"
    acc = (adata.obs.loc[cafs, "cell_subtype"] == adata.obs.loc[cafs, "true_subtype"]).mean()
    assert acc >= 0.95
    assert "CAF_IFN" not in set(adata.obs["cell_subtype"])
    in_arm = adata.obs_names[arm]
    assert (adata.obs.loc[in_arm, "cell_state"] == "CAF_IFN").mean() >= 0.9
    rest = adata.obs_names[np.setdiff1d(caf, arm)]
    assert (adata.obs.loc[rest, "cell_state"] == "none").mean() >= 0.9
    assert "state:CAF" in set(table["level"])
    assert adata.uns["annotation"]["sources"]["CAF_IFN"] == "test"


def test_state_names_subcluster_only_without_identity():
    panel = state_panel()
    del panel["cell_types"]["CAF"]["subtypes"]["myCAF"]
    del panel["cell_types"]["CAF"]["subtypes"]["iCAF"]
    adata = labelled()
    caf = np.flatnonzero(adata.obs["group"] == "A")
    adata.X = adata.X.toarray()
    half = caf[: len(caf) // 2]  # the 'myCAF' half of the embedding
    adata.X[np.ix_(half, [50, 51, 52])] += 4.0
    annotate.annotate(adata, panel, species_mode="mouse", subcluster_resolution=0.3)
    assert (adata.obs.loc[adata.obs_names[half], "cell_subtype"] == "CAF_IFN").mean() >= 0.9


def test_parent_entry_labels_its_clusters_with_the_parent():
    """A form of a cell type (panel key ``parent``, e.g. alveolar macrophages of TAM) labels the
    clusters it wins with the parent; the two forms do not compete for the margin."""
    panel = yaml.safe_load(yaml.safe_dump(PANEL))
    # group C carries g20-g22 (the 'B' markers here): call that marker set a form of TAM
    panel["cell_types"]["TAM_form"] = {
        "species": "mouse", "markers": ["g20", "g21", "g22"], "source": "test", "parent": "TAM"
    }  # fmt: skip
    del panel["cell_types"]["B"]
    adata = labelled()
    table = annotate.annotate(adata, panel, species_mode="mouse")
    truth = adata.obs["group"].map({"A": "CAF", "B": "TAM", "C": "TAM"})
    assert (adata.obs["cell_type"].astype(str) == truth).all()
    top = table[table["level"] == "cell_type"].set_index("group")
    assert top.loc["2", "best_label"] == "TAM_form" and top.loc["2", "label"] == "TAM"
    assert top.loc["2", "runner_up"] not in {"TAM", "TAM_form"}
    assert "score_TAM_form" in adata.obs


def test_assign_groups_runner_up_is_another_label():
    scores = pd.DataFrame({"a": [2.0, 2.0], "a2": [1.95, 1.9], "b": [0.0, 0.5]}, index=["x", "y"])
    groups = pd.Series(["1", "1"], index=scores.index)
    plain = annotate.assign_groups(scores, groups, min_score=0.5, min_margin=0.1)
    assert plain.loc[0, "label"] == "unassigned"  # a vs a2: margin 0.075
    table = annotate.assign_groups(
        scores, groups, min_score=0.5, min_margin=0.1, parent={"a2": "a"}
    )
    assert table.loc[0, "label"] == "a" and table.loc[0, "runner_up"] == "b"
    assert table.loc[0, "margin"] == pytest.approx(2.0 - 0.25)
    swapped = annotate.assign_groups(
        scores[["a2", "b"]].rename(columns={"a2": "form"}), groups, min_score=0.5,
        min_margin=0.1, parent={"form": "a"},
    )  # fmt: skip
    assert swapped.loc[0, "label"] == "a" and swapped.loc[0, "best_label"] == "form"


def test_label_table_has_the_label_columns_per_cell():
    adata = labelled()
    adata.obs["sample"] = "s1"
    adata.obs["barcode"] = adata.obs_names
    annotate.annotate(adata, PANEL, species_mode="mouse", subcluster_resolution=0.3)
    labels = annotate.label_table(adata)
    assert list(labels.columns) == list(annotate.LABEL_COLUMNS)
    assert labels.index.equals(adata.obs_names)
    assert labels["cell_type"].equals(adata.obs["cell_type"])


def _abundant_tam(p_tam: float, n: int = 1000, seed: int = 0) -> ad.AnnData:
    """Mouse cells with a share ``p_tam`` of TAMs in 4 clusters, CAF and T cells in one each."""
    rng = np.random.default_rng(seed)
    types = rng.choice(["TAM", "CAF", "T"], size=n, p=[p_tam, (1 - p_tam) / 2, (1 - p_tam) / 2])
    genes = ["C1qa", "C1qb", "Adgre1", "Col1a1", "Dcn", "Pdgfra", "Cd3e", "Cd3g", "Trac"]
    genes += [f"g{i}" for i in range(30)]
    x = rng.poisson(0.2, size=(n, len(genes))).astype(float)
    for t, idx in {"TAM": [0, 1, 2], "CAF": [3, 4, 5], "T": [6, 7, 8]}.items():
        x[np.ix_(types == t, idx)] += rng.poisson(5, size=((types == t).sum(), 3))
    a = ad.AnnData(np.log1p(x))
    a.var_names = genes
    tam_cluster = np.array([f"tam{i}" for i in rng.integers(0, 4, n)])
    a.obs["leiden"] = np.where(types == "TAM", tam_cluster, types)
    return a


ABUNDANT_MARKERS = {
    "TAM": ["C1qa", "C1qb", "Adgre1"],
    "CAF": ["Col1a1", "Dcn", "Pdgfra"],
    "T": ["Cd3e", "Cd3g", "Trac"],
}


@pytest.mark.parametrize("p_tam", [0.8, 0.9])
def test_abundant_type_is_labelled_not_capped_by_its_share(p_tam) -> None:
    """Issue 13: z-scores cap a type of share p at sqrt((1-p)/p); 80% TAMs stay TAM."""
    from tmeflow.annotate._scoring import abundance_correction, assign_groups, score_cells

    a = _abundant_tam(p_tam)
    scores = score_cells(a, ABUNDANT_MARKERS)
    groups = a.obs["leiden"].astype(str)
    raw = assign_groups(scores, groups, min_score=0.5, min_margin=0.1).set_index("group")
    assert (raw.loc[[f"tam{i}" for i in range(4)], "label"] == "unassigned").all()  # the cap
    divisors = abundance_correction(scores, groups)
    assert set(divisors) == {"TAM"} and divisors["TAM"] == pytest.approx(
        np.sqrt((1 - p_tam) / p_tam), abs=0.05
    )
    scores["TAM"] = scores["TAM"] / divisors["TAM"]
    fixed = assign_groups(scores, groups, min_score=0.5, min_margin=0.1).set_index("group")
    assert (fixed.loc[[f"tam{i}" for i in range(4)], "label"] == "TAM").all()
    assert fixed.loc["CAF", "label"] == "CAF" and fixed.loc["T", "label"] == "T"


def test_no_abundance_correction_when_no_type_is_the_majority() -> None:
    from tmeflow.annotate._scoring import abundance_correction, score_cells

    a = _abundant_tam(0.4)
    assert abundance_correction(score_cells(a, ABUNDANT_MARKERS), a.obs["leiden"]) == {}


def test_doublet_summary_flags_a_cluster_of_doublet_like_cells() -> None:
    rng = np.random.default_rng(0)
    n = 400
    leiden = np.repeat(["0", "1", "2", "3"], n // 4)
    cluster_score = rng.uniform(0, 0.3, n)
    cluster_score[:20] = 0.6  # a few doublet-like cells spread over clusters 0 (and none else)
    cluster_score[300:340] = 0.7  # 40% of cluster 3 doublet-like, kept below the call
    scrublet_call = np.zeros(n, dtype=bool)
    scrublet_call[[5, 120, 250]] = True  # Scrublet-only calls the consensus kept
    obs = pd.DataFrame(
        {
            "species": "mouse",
            "leiden": leiden,
            "cell_type": np.where(leiden == "3", "TAM", np.where(leiden == "2", "CAF", "T")),
            "doublet_score_scrublet": rng.uniform(0, 0.2, n),
            "predicted_doublet_scrublet": scrublet_call,
            "doublet_score_cluster": cluster_score,
            "predicted_doublet_cluster": False,
        }
    )
    table = annotate.doublet_summary(obs)
    cl = table[table["level"] == "cluster"].set_index("group")
    assert cl.loc["3", "doublet_high_cluster"] == pytest.approx(0.4)
    assert cl.loc["0", "doublet_high_cluster"] == pytest.approx(0.2)
    assert cl.loc["3", "doublet_rate_cluster"] == pytest.approx(60 / 400)
    assert cl.loc["3", "doublet_enriched"]
    # 20% doublet-like but not above the species' rate (15%) by 2x: not flagged
    assert not cl.loc[["0", "1", "2"], "doublet_enriched"].any()
    assert cl.loc["3", "doublet_mean_cluster"] > cl.loc["1", "doublet_mean_cluster"]
    assert cl.loc["1", "doublet_high_scrublet"] == pytest.approx(0.01)
    ct = table[table["level"] == "cell_type"].set_index("group")
    assert ct.loc["TAM", "doublet_enriched"] and not ct.loc["CAF", "doublet_enriched"]
    scores = pd.DataFrame(
        {"level": ["cell_type", "cell_type", "subtype:CAF"], "species": "mouse",
         "group": ["3", "0", "2:0"], "label": ["TAM", "T", "myCAF"]}
    )  # fmt: skip
    joined = annotate.add_doublet_columns(scores, table)
    assert joined["doublet_enriched"].tolist()[:2] == [True, False]
    assert pd.isna(joined["doublet_enriched"].iat[2]) and len(joined) == 3
    cols = ["doublet_score_scrublet", "predicted_doublet_scrublet"]
    cols += ["doublet_score_cluster", "predicted_doublet_cluster"]
    empty = annotate.doublet_summary(obs.drop(columns=cols))
    assert empty.empty and "doublet_enriched" in empty.columns


@pytest.mark.parametrize("n_genes", [20, 120])
def test_recluster_without_an_embedding_uses_x_or_its_pca(n_genes):
    """No X_scVI: the sub-clustering graph is on X (<= 50 genes) or a PCA of X, as scanpy's."""
    rng = np.random.default_rng(0)
    x = np.log1p(rng.poisson(1.0, (200, n_genes)).astype(np.float32))
    x[:100, :10] += 3  # two groups of cells
    a = ad.AnnData(x)
    cells = np.ones(200, dtype=bool)
    labels = annotate_groups.recluster(a, cells, resolution=0.2, n_neighbors=10, seed=0)
    tab = pd.crosstab(labels, np.repeat([0, 1], 100))
    assert tab.shape[0] >= 2
    assert (tab.max(axis=1) == tab.sum(axis=1)).all()  # no cluster mixes the two groups
    assert "X_pca" not in a.obsm  # worked on a copy
