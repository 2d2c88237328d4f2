"""A study with a third arm: each comparison sees only its own two arms (select_arms).

The third arm here is the treated arm again with Mmp11 ten times higher and other animals:
pooled into either arm it would change every table, so equal tables show it was left out.
"""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData

from tmeflow.stats import _communication as cc
from tmeflow.stats import _composition as composition
from tmeflow.stats import _confirmatory as cf
from tmeflow.stats import _de as de
from tmeflow.stats import _de_tables as de_levels
from tmeflow.stats import _pseudobulk as pseudobulk

from .._de_data import MOUSE, REF, TEST, make_adata

THIRD = "combo"


@pytest.fixture(scope="module")
def two_arms() -> AnnData:
    return make_adata(samples_per_arm=3, cells_per_sample=90, seed=11)


@pytest.fixture(scope="module")
def three_arms(two_arms: AnnData) -> AnnData:
    extra = two_arms[two_arms.obs["condition"] == TEST].copy()
    extra.obs_names = [f"x{n}" for n in extra.obs_names]
    obs = extra.obs.copy()
    obs["condition"] = THIRD
    obs["sample"] = obs["sample"].astype(str).str.replace(TEST, THIRD)
    extra.obs = obs
    counts = extra.layers["counts"].toarray()
    counts[:, list(extra.var_names).index("Mmp11")] *= 10
    extra.layers["counts"] = sp.csr_matrix(counts)
    extra.X = extra.layers["counts"].astype(np.float32)
    both = ad.concat([two_arms, extra], merge="same")
    for col in ("sample", "condition", "cell_type", "cell_subtype", "species"):
        both.obs[col] = both.obs[col].astype("category")
    return both


def test_select_arms_keeps_the_two_arms_and_drops_unused_levels(two_arms, three_arms, caplog):
    with caplog.at_level("INFO", logger="tmeflow"):
        sub = pseudobulk.select_arms(three_arms, "condition", REF, TEST)
    assert list(sub.obs_names) == list(two_arms.obs_names)
    assert list(sub.obs["condition"].cat.categories) == sorted([REF, TEST])
    assert THIRD not in set(sub.obs["sample"].cat.categories.str.split("_").str[0])
    n_third = int((three_arms.obs["condition"] == THIRD).sum())
    assert f"{n_third} of {three_arms.n_obs} cells are in other arms" in caplog.text
    assert f"{THIRD}: {n_third}" in caplog.text
    # two arms only: the object itself, no copy; a missing column: unchanged
    assert pseudobulk.select_arms(two_arms, "condition", REF, TEST) is two_arms
    assert pseudobulk.select_arms(three_arms, "arm", REF, TEST) is three_arms
    # the other contrast: the treated arm against the third
    other = pseudobulk.select_arms(three_arms, "condition", TEST, THIRD)
    assert set(other.obs["condition"]) == {TEST, THIRD}


def test_de_tables_ignore_the_third_arm(two_arms, three_arms):
    settings = de.DESettings(condition_key="condition", reference=REF, test=TEST)
    kw = dict(genes=["Mmp11"], subtypes=False)
    alone = de_levels.run_levels(two_arms, settings, **kw)
    pooled = de_levels.run_levels(three_arms, settings, **kw)
    pd.testing.assert_frame_equal(alone.by_type["CAF"], pooled.by_type["CAF"])
    pd.testing.assert_frame_equal(alone.goi, pooled.goi)
    # and the third arm against the treated one: Mmp11 x10 in every cell type
    third = de_levels.run_levels(
        three_arms, de.DESettings(condition_key="condition", reference=TEST, test=THIRD), **kw
    )
    caf = third.by_type["CAF"].set_index("gene")
    assert caf.loc["Mmp11", "log2FoldChange"] == pytest.approx(np.log2(10), abs=0.3)
    assert caf.loc["Mmp11", "n_samples_reference"] == 3 == caf.loc["Mmp11", "n_samples_test"]


def test_confirmatory_family_ignores_the_third_arm(two_arms, three_arms):
    hyps = cf.parse_hypotheses(
        [
            {"gene": "Mmp11", "cell_type": "CAF", "direction": "up"},
            {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
            {"gene": "Mmp11", "cell_type": "CAF", "test": "source"},
            {"gene": "Gas6", "groups": ["CAF"], "test": "main_sources"},
        ]
    )
    kw = dict(reference=REF, test=TEST, shrink=False)
    alone, alone_values = cf.confirm(two_arms, hyps, **kw)
    pooled, pooled_values = cf.confirm(three_arms, hyps, **kw)
    pd.testing.assert_frame_equal(alone, pooled)
    pd.testing.assert_frame_equal(alone_values, pooled_values)
    assert set(pooled_values["condition"]) == {REF, TEST}


def test_communication_scores_only_the_two_arms(two_arms, three_arms):
    resource = pd.DataFrame({"ligand": ["GAS6", "MMP11"], "receptor": ["AXL", "AXL"]})
    o2o = {m.upper(): m for m in MOUSE}
    kw = dict(species="xenograft", reference=REF, test=TEST, min_cells=5)
    alone = cc.communication(two_arms, resource, o2o, **kw)
    pooled = cc.communication(three_arms, resource, o2o, **kw)
    for a, b in zip(alone, pooled, strict=True):
        pd.testing.assert_frame_equal(a, b)
    assert set(pooled[0]["condition"]) == {REF, TEST}


def test_composition_of_a_contrast_after_select_arms(three_arms):
    sub = pseudobulk.select_arms(three_arms, "condition", REF, TEST)
    props = composition.proportions(sub, group_key="cell_type", condition_key="condition")
    assert set(props["condition"]) == {REF, TEST}
    assert not props["sample"].astype(str).str.startswith(THIRD).any()
