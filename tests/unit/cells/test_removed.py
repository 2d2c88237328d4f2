"""Unit tests for tmeflow.cells._removed: removed cells labelled by their nearest kept cells,
tabulated by sample, arm and label, and the arm flag."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow.cells import _removed as removed_mod

TYPES = ("CAF", "TAM", "endothelial")


def _cells(
    n_per_type: dict[str, int], *, sample: str, species: str, rng, prefix: str, depth=3000
) -> ad.AnnData:
    """Cells of known types: each type over-expresses its own 30 of 300 genes."""
    n_genes = 300
    base = rng.gamma(0.5, 1, n_genes)
    rows, labels = [], []
    for t, n in n_per_type.items():
        p = base.copy()
        j = TYPES.index(t) if t in TYPES else 0
        p[j * 30 : (j + 1) * 30] *= 12
        p /= p.sum()
        rows += [rng.poisson(p * rng.uniform(0.5, 1.5) * depth) for _ in range(n)]
        labels += [t] * n
    X = sp.csr_matrix(np.array(rows, dtype=np.float32).reshape(len(rows), n_genes))
    obs = pd.DataFrame(
        {"sample": sample, "species": species, "cell_type": labels},
        index=[f"{sample}_{prefix}{i}" for i in range(len(rows))],
    )
    var = pd.DataFrame({"species": species}, index=[f"g{i}" for i in range(n_genes)])
    a = ad.AnnData(X, obs=obs, var=var)
    a.layers["counts"] = a.X.copy()
    return a


def test_removed_cells_get_the_label_of_their_type() -> None:
    rng = np.random.default_rng(0)
    kept = ad.concat(
        [
            _cells({t: 80 for t in TYPES}, sample=s, species="mouse", rng=rng, prefix="k")
            for s in ("a1", "b1")
        ]
    )
    # removed cells: shallow (low-quality) versions of known types
    rm = _cells(
        {t: 20 for t in TYPES}, sample="a1", species="mouse", rng=rng, prefix="r", depth=600
    )
    truth = rm.obs["cell_type"].to_numpy()
    del rm.layers["counts"]
    out = removed_mod.label_removed(kept, rm, seed=0)
    assert list(out.columns) == list(removed_mod.LABEL_COLUMNS)
    assert (out.index == rm.obs_names).all()
    assert (out["label"].to_numpy() == truth).mean() >= 0.9
    assert (out["neighbours_from"] == "sample").all()
    assert out["vote_share"].between(0, 1).all()
    # the same inputs give the same labels
    again = removed_mod.label_removed(kept, rm, seed=0)
    pd.testing.assert_frame_equal(out, again)


def test_a_given_embedding_decides_and_cells_without_one_fall_back_to_pca() -> None:
    """In the scVI latent the neighbours come from the given coordinates, not from the counts:
    a latent that puts every removed cell beside the kept TAMs makes them TAM whatever their
    counts say; a NaN row (its sample was not in the model) is labelled through the PCA."""
    rng = np.random.default_rng(3)
    kept = _cells({t: 60 for t in TYPES}, sample="a1", species="mouse", rng=rng, prefix="k")
    rm = _cells({"CAF": 12}, sample="a1", species="mouse", rng=rng, prefix="r", depth=800)
    centre = {t: rng.normal(0, 5, 4) for t in TYPES}
    ek = np.array([centre[t] + rng.normal(0, 0.3, 4) for t in kept.obs["cell_type"]])
    er = np.array([centre["TAM"] + rng.normal(0, 0.3, 4) for _ in range(rm.n_obs)])
    er[:3] = np.nan
    out = removed_mod.label_removed(kept, rm, seed=0, embedding=(ek, er))
    assert list(out.columns) == list(removed_mod.LABEL_COLUMNS)
    assert list(out["space"]) == ["PCA"] * 3 + ["scVI"] * 9
    assert (out["label"].iloc[3:] == "TAM").all()
    assert (out["label"].iloc[:3] == "CAF").all()  # their counts: CAF
    plain = removed_mod.label_removed(kept, rm, seed=0)
    assert (plain["space"] == "PCA").all() and (plain["label"] == "CAF").all()
    with pytest.raises(ValueError, match="embedding rows"):
        removed_mod.label_removed(kept, rm, embedding=(ek[:5], er))


def test_species_without_kept_cells_is_unassigned_with_a_note() -> None:
    rng = np.random.default_rng(1)
    kept = _cells({"CAF": 50, "TAM": 50}, sample="a1", species="mouse", rng=rng, prefix="k")
    rm_h = _cells({"CAF": 5}, sample="a1", species="human", rng=rng, prefix="h")
    rm_m = _cells({"TAM": 5}, sample="a2", species="mouse", rng=rng, prefix="m")
    rm = ad.concat([rm_h, rm_m])
    rm.var["species"] = "mouse"
    rm.obs.loc[rm_h.obs_names[0], "species"] = "mixed"
    rm.obs["dominant_species"] = rm.obs["species"].replace({"mixed": "human"})
    out = removed_mod.label_removed(kept, rm, seed=0)
    human = out.loc[rm_h.obs_names]
    assert (human["label"] == removed_mod.UNASSIGNED).all()
    assert (human["neighbours_from"] == "no kept human cells").all()
    assert (human["species_space"] == "human").all()  # the mixed one by its dominant species
    # sample a2 has no kept cells: its removed cells vote among every sample's
    mouse = out.loc[rm_m.obs_names]
    assert (mouse["neighbours_from"] == "all samples").all()
    assert (mouse["label"] == "TAM").all()
    # nothing removed: an empty frame with the columns
    empty = removed_mod.label_removed(kept, rm[:0])
    assert empty.empty and list(empty.columns) == list(removed_mod.LABEL_COLUMNS)


def _obs(sample: str, label: str, n: int, **flags) -> pd.DataFrame:
    df = pd.DataFrame({"sample": [sample] * n, "label": [label] * n})
    for r in removed_mod.REMOVED_REASONS:
        df[f"removed_{r}"] = flags.get(r, False)
    return df


CONDITIONS = {"c1": "control", "c2": "control", "t1": "drug", "t2": "drug"}


def _kept() -> pd.DataFrame:
    return pd.concat(
        [_obs(s, lab, 100) for s in CONDITIONS for lab in ("CAF", "TAM")], ignore_index=True
    )


def test_arm_specific_removal_is_flagged_and_balanced_is_not() -> None:
    # CAF: 20 removed per drug sample, 2 per control sample (10x the rate); TAM: 5 everywhere
    rm = pd.concat(
        [_obs(s, "CAF", 20 if s.startswith("t") else 2, high_mito=True) for s in CONDITIONS]
        + [_obs(s, "TAM", 5, doublet=True) for s in CONDITIONS],
        ignore_index=True,
    )
    table = removed_mod.removed_table(rm, _kept(), CONDITIONS)
    assert list(table.columns) == list(removed_mod.TABLE_COLUMNS)
    assert table["n_removed"].sum() == len(rm)  # every removed cell accounted for
    caf = table[table["label"] == "CAF"]
    assert caf["flagged"].all() and not table.loc[table["label"] == "TAM", "flagged"].any()
    assert (caf["removed_high_mito"] == caf["n_removed"]).all()
    assert (caf["removed_doublet"] == 0).all()
    t1 = caf[caf["sample"] == "t1"].iloc[0]
    assert t1["condition"] == "drug" and t1["n_kept"] == 100
    assert t1["removal_rate"] == 20 / 120
    flags = removed_mod.removed_flags(rm, _kept(), CONDITIONS)
    assert flags["label"].tolist() == ["CAF", "TAM"]  # flagged first
    assert flags.loc[0, "flagged"] and "more than 2x" in flags.loc[0, "note"]
    assert flags.loc[1, "label_rate_ratio"] == 1.0


def test_few_removed_or_one_arm_is_not_flagged() -> None:
    # a 10x rate difference on 6 cells: below the 10-cell minimum
    rm = pd.concat(
        [_obs(s, "CAF", 3 if s.startswith("t") else 0) for s in CONDITIONS], ignore_index=True
    )
    flags = removed_mod.removed_flags(rm, _kept(), CONDITIONS)
    assert flags.loc[0, "label_rate_ratio"] == np.inf and not flags.loc[0, "flagged"]
    # a label absent from one arm (no kept or removed cells there): no ratio, a note
    kept = pd.concat([_kept(), _obs("t1", "B", 50)], ignore_index=True)
    rm = _obs("t1", "B", 30, low_counts=True)
    flags = removed_mod.removed_flags(rm, kept, CONDITIONS)
    assert np.isnan(flags.loc[0, "label_rate_ratio"]) and not flags.loc[0, "flagged"]
    assert flags.loc[0, "note"] == "cells of this label in drug only"
    table = removed_mod.removed_table(rm, kept, CONDITIONS)
    assert table["n_removed"].sum() == 30 and table.loc[0, "removed_low_counts"] == 30


def test_empty_removal_gives_an_empty_table_with_its_columns() -> None:
    rm = _obs("c1", "CAF", 0)
    table = removed_mod.removed_table(rm, _kept(), CONDITIONS)
    assert table.empty and list(table.columns) == list(removed_mod.TABLE_COLUMNS)
    flags = removed_mod.removed_flags(rm, _kept(), CONDITIONS)
    assert flags.empty and list(flags.columns) == list(removed_mod.FLAG_COLUMNS)


def test_removed_obs_takes_failed_and_unannotated_cells() -> None:
    cells = pd.DataFrame(
        {
            "sample": "c1",
            "species": ["mouse", "mouse", "mixed", "human"],
            "qc_pass": [True, False, False, True],
            "qc_low_counts": [False, True, False, False],
            "qc_mixed_species": [False, False, True, False],
        },
        index=["c1_a", "c1_b", "c1_c", "c1_d"],
    )
    out = removed_mod.removed_obs(cells, pd.Index(["c1_a"]))
    assert out.index.tolist() == ["c1_b", "c1_c", "c1_d"]
    assert out["removed_low_counts"].tolist() == [True, False, False]
    assert out["removed_mixed_species"].tolist() == [False, True, False]
    assert out["removed_not_annotated"].tolist() == [False, False, True]
    assert not out["removed_doublet"].any()  # a reason without its column: False


def test_removed_by_label_figure_is_deterministic(tmp_path) -> None:
    from tmeflow.plots import qc as qc_plots

    rm = pd.concat(
        [_obs(s, "CAF", 20 if s.startswith("t") else 2, high_mito=True) for s in CONDITIONS]
        + [_obs(s, "TAM", 5, doublet=True) for s in CONDITIONS],
        ignore_index=True,
    )
    table = removed_mod.removed_table(rm, _kept(), CONDITIONS)
    flags = removed_mod.removed_flags(rm, _kept(), CONDITIONS)
    rates = qc_plots._arm_rates(flags, ["TAM", "CAF"], ["control", "drug"])
    np.testing.assert_allclose(rates, [[5 / 105, 5 / 105], [2 / 102, 20 / 120]], rtol=1e-5)
    arms = ["control", "drug"]
    a = qc_plots.removed_by_label_plot(table, flags, stem=tmp_path / "a", conditions=arms)
    b = qc_plots.removed_by_label_plot(table, flags, stem=tmp_path / "b", conditions=arms)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    empty = removed_mod.removed_table(rm[:0], _kept(), CONDITIONS)
    no_flags = removed_mod.removed_flags(rm[:0], _kept(), CONDITIONS)
    written = qc_plots.removed_by_label_plot(empty, no_flags, stem=tmp_path / "e")
    assert all(p.exists() for p in written)


def test_account_removed_brings_back_doublets_and_mixed_cells_only() -> None:
    """Cells removed as doublets or mixed species (and for nothing else) are collected with
    their counts on the kept genes, their labels, the sample's condition and the reasons;
    a low-quality cell is not, whatever else it was."""
    rng = np.random.default_rng(3)
    kept = ad.concat(
        [
            _cells({t: 60 for t in TYPES}, sample=s, species="mouse", rng=rng, prefix="k")
            for s in ("a1", "b1")
        ]
    )
    kept.obs["condition"] = kept.obs["sample"].map({"a1": "control", "b1": "drug"})
    kept.obs["cell_subtype"] = kept.obs["cell_type"].astype(str) + "_sub"
    rm = _cells({t: 10 for t in TYPES}, sample="b1", species="mouse", rng=rng, prefix="r")
    rm.obs["human_fraction"] = 0.1
    rm = rm[:, ::-1].copy()  # another gene order: the output follows the kept genes
    reasons = {f"removed_{r}": False for r in removed_mod.REMOVED_REASONS}
    obs = pd.DataFrame({"sample": "b1", "species": "mouse", **reasons}, index=rm.obs_names)
    obs.iloc[:10, obs.columns.get_loc("removed_doublet")] = True
    obs.iloc[10:20, obs.columns.get_loc("removed_mixed_species")] = True
    obs.iloc[15:20, obs.columns.get_loc("removed_low_counts")] = True  # stays out
    obs.iloc[20:, obs.columns.get_loc("removed_high_mito")] = True
    per_cell, back = removed_mod.account_removed(kept, rm, obs, k=10, seed=0)
    assert len(per_cell) == rm.n_obs and (per_cell["label"] != removed_mod.UNASSIGNED).all()
    assert list(back.obs_names) == list(rm.obs_names[:15])
    assert back.var_names.equals(kept.var_names)
    np.testing.assert_array_equal(
        back.layers["counts"].toarray(), rm[back.obs_names, kept.var_names].X.toarray()
    )
    assert (back.obs["condition"] == "drug").all() and (back.obs["sample"] == "b1").all()
    assert (back.obs["cell_type"] == rm.obs.loc[back.obs_names, "cell_type"]).mean() >= 0.9
    assert (back.obs["cell_subtype"] == back.obs["cell_type"] + "_sub").all()
    assert back.obs["removed_doublet"].sum() == 10 and back.obs["removed_mixed_species"].sum() == 5
    assert (back.obs["human_fraction"] == 0.1).all()
