"""The paper's hypotheses (config/config.yaml's defaults) on a human-only study.

A human-only run that keeps the default hypotheses (mouse Gas6/Mmp11, mouse-panel subtypes,
``proportion: stroma`` = mouse cells) must not fail or give verdicts: every row is ``not
testable`` with its reason, and the family still counts them (issue 30, item 2).
"""

import yaml

from tmeflow.stats import _confirmatory as cf

from ...conftest import REPO
from .._confirm_data import REF, TEST, stromal_counts


def test_default_hypotheses_are_not_testable_in_human_only_data():
    adata = stromal_counts(n_genes=120, cells_per_animal=120, seed=3)
    adata.obs["species"] = "human"  # every cell and gene human, as with `species: human`
    adata.var["species"] = "human"
    adata.var_names = [f"H{g}" for g in adata.var_names]  # no mouse symbol, no AXL
    defaults = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["hypotheses"]
    hyps = cf.parse_hypotheses(defaults)
    table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST)
    assert len(table) == len(defaults)
    assert (table["verdict"] == "not testable").all(), table[["hypothesis", "verdict"]]
    reasons = table["reason"].astype(str)
    assert reasons.str.startswith("not testable:").all()
    assert reasons.str.contains("Mmp11").any() and reasons.str.contains("Gas6").any()
    assert reasons.str.contains("'stroma'").any()  # no mouse cells: no stroma
    assert table["p_holm"].isna().all()
