"""bench/confirmatory_calibration.py: verdicts re-read at the family's level, unjudged runs."""

import importlib.util
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location(
    "confirmatory_calibration", REPO / "bench" / "confirmatory_calibration.py"
)
cc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cc)


def _runs(rows):
    cols = ["design", "scenario", "seed", "hypothesis", "kind", "in_family", "pvalue", "p_holm",
            "supported", "loo"]  # fmt: skip
    return pd.DataFrame(rows, columns=cols)


def test_level_is_the_configs_default():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    assert cc.ALPHA == schema["properties"]["hypotheses_alpha"]["default"] < cc.NOMINAL


def test_verdicts_re_read_at_the_level_and_nominal_holm_beside_them():
    # seed 1: Holm p 0.045 (an error at 0.05, not at 0.04); seed 2: 0.01 (an error at both);
    # seed 3: nothing
    runs = _runs([
        (3, "null", 1, "Postn source: CAF", "source", True, 0.009, 0.045, True, False),
        (3, "null", 2, "Postn source: CAF", "source", True, 0.002, 0.010, True, False),
        (3, "null", 3, "Postn source: CAF", "source", True, 0.400, 1.000, False, False),
    ])  # fmt: skip
    table = cc.summarise(runs).set_index("measure")
    assert table.loc["fwer_holm_nominal", "events"] == 2
    assert table.loc["fwer_holm", "events"] == 1
    assert table.loc["fwer_supported", "events"] == 1
    assert table.loc["fwer_holm", "n_experiments"] == 3


def test_change_rows_passing_holm_without_loo_are_unjudged_until_rechecked():
    runs = _runs([
        (4, "null", 7, "Mmp11 up in CAF", "change", True, 0.001, 0.005, False, False),
        (4, "null", 8, "Mmp11 up in CAF", "change", True, 0.300, 1.000, False, False),
        (4, "null", 9, "Mmp11 up in CAF", "change", True, 0.001, 0.005, True, True),
        (4, "null", 7, "Postn source: CAF", "source", True, 0.001, 0.005, True, False),
    ])  # fmt: skip
    todo = cc.unjudged(runs)
    assert list(todo["seed"]) == [7]  # 8 cannot be supported, 9 ran with leave-one-out
    label = cc.summarise(runs).set_index("measure").loc["fwer_supported", "hypothesis"]
    assert "1 experiments unjudged" in label


_ch_spec = importlib.util.spec_from_file_location(
    "change_calibration", REPO / "bench" / "change_calibration.py"
)
ch = importlib.util.module_from_spec(_ch_spec)
_ch_spec.loader.exec_module(ch)


def test_change_bench_puts_each_methods_change_row_into_the_familys_holm():
    """bench/change_calibration.py: a method's change p replaces PyDESeq2's in the family of
    the same seed (Holm over m = 5 again); power supported needs Holm, the direction (up) and
    a leave-one-out check on every row that passed Holm."""
    label = "Mmp11 up in CAF"
    other = "TAM among stroma up"
    fam = _runs([
        # seed 1: PyDESeq2's change p 0.001 passes Holm (0.005); voom's 0.02 does not (0.1)
        (3, "low", 1, label, "change", True, 0.001, 0.005, False, False),
        (3, "low", 1, other, "proportion", True, 0.5, 1.0, False, False),
        # seed 2: both pass
        (3, "low", 2, label, "change", True, 0.001, 0.005, False, False),
        (3, "low", 2, other, "proportion", True, 0.5, 1.0, False, False),
    ])  # fmt: skip
    mine = pd.DataFrame({
        "design": 3, "scenario": "low", "seed": [1, 2], "method": "limma_voom",
        "pvalue": [0.02, 0.004], "effect": [0.9, 1.1], "loo": [False, True],
        "loo_unstable": [pd.NA, False], "cpu_s": 0.1,
    })  # fmt: skip
    table = ch.summarise(mine, cc._with_method(fam)).set_index(["method", "measure"])
    assert table.loc[("limma_voom", "power_raw"), "events"] == 2
    assert table.loc[("limma_voom", "power_holm"), "events"] == 1  # 0.004 x 5 < 0.04
    assert table.loc[("pydeseq2", "power_holm"), "events"] == 2
    assert table.loc[("limma_voom", "power_supported"), "events"] == 1
    # a row that passed Holm without leave-one-animal-out leaves supported unjudged
    mine.loc[1, "loo"] = False
    table = ch.summarise(mine, cc._with_method(fam)).set_index(["method", "measure"])
    assert ("limma_voom", "power_supported") not in table.index
    # a sign flipped leaving one animal out is not supported
    mine.loc[1, ["loo", "loo_unstable"]] = [True, True]
    table = ch.summarise(mine, cc._with_method(fam)).set_index(["method", "measure"])
    assert table.loc[("limma_voom", "power_supported"), "events"] == 0
