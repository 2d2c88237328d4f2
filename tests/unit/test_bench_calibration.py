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
