"""Figures of the ligand-receptor communication: deterministic, and drawn on gaps too."""

import numpy as np
import pandas as pd

from tmeflow.plots import communication


def _tables(missing: bool):
    rows, comp = [], []
    for k, pair in enumerate(["Gas6-AXL", "Dcn-EGFR", "Tgfb1-TGFBR1"]):
        for a in range(6):
            cond = "control" if a < 3 else "drug"
            gap = missing and pair == "Dcn-EGFR" and cond == "drug"
            score = np.nan if gap else 0.3 + 0.1 * k
            rows.append(
                {"sender": "CAF", "receiver": "tumor", "interaction": pair, "sample": f"s{a}",
                 "condition": cond, "score": score, "ligand_frac": np.nan if gap else 0.5,
                 "receptor_frac": np.nan if gap else 0.4}
            )  # fmt: skip
        comp.append(
            {"sender": "CAF", "receiver": "tumor", "interaction": pair, "rank": k + 1,
             "padj": 0.2, "effect": 0.1}
        )  # fmt: skip
    return pd.DataFrame(rows), pd.DataFrame(comp)


def test_dotplot_draws_pairs_an_arm_has_no_score_for(tmp_path):
    """A sender absent from an arm's animals leaves NaN scores (a real mouse lung split did):
    the dot is left out, the figure is written, and twice the same bytes."""
    scores, comp = _tables(missing=True)
    a = communication.dotplot(scores, comp, stem=tmp_path / "a", conditions=["control", "drug"])
    b = communication.dotplot(scores, comp, stem=tmp_path / "b", conditions=["control", "drug"])
    for x, y in zip(a, b, strict=True):
        assert x.stat().st_size > 1000 and x.read_bytes() == y.read_bytes()
    all_nan = scores.assign(score=np.nan, ligand_frac=np.nan, receptor_frac=np.nan)
    out = communication.dotplot(all_nan, comp, stem=tmp_path / "c", conditions=["control", "drug"])
    assert out[0].stat().st_size > 1000
