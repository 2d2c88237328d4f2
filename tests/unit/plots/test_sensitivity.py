"""The sensitivity figure: a verdict grid, deterministic bytes."""

import numpy as np
import pandas as pd
import pytest

from tmeflow.plots.sensitivity import VERDICT_FILL, sensitivity_plot

HYPS = ["H1: Mmp11 up in CAF", "H2: TAM among stroma up"]
TABLE = pd.DataFrame(
    {
        "setting": ["configured"] * 2 + ["resolution"] * 2 + ["doublets"] * 2,
        "value": ["as run"] * 2 + ["0.4"] * 2 + ["off"] * 2,
        "hypothesis": HYPS * 3,
        "verdict": ["supported", "not supported", "supported", "not testable"]
        + ["not recomputable"] * 2,
        "p_holm": [0.001, 0.3, 0.002, np.nan, np.nan, np.nan],
    }
)


def test_sensitivity_plot_is_deterministic_and_follows_the_verdicts(tmp_path):
    a = sensitivity_plot(TABLE, stem=tmp_path / "a")
    b = sensitivity_plot(TABLE, stem=tmp_path / "b")
    assert [p.suffix for p in a] == [".pdf", ".png"]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    flipped = TABLE.assign(verdict=TABLE["verdict"].replace({"supported": "not supported"}))
    c = sensitivity_plot(flipped, stem=tmp_path / "c")
    assert c[1].read_bytes() != a[1].read_bytes()
    assert set(TABLE["verdict"]) <= set(VERDICT_FILL)


def test_sensitivity_plot_refuses_a_table_without_verdicts(tmp_path):
    with pytest.raises(ValueError, match="verdict"):
        sensitivity_plot(TABLE.drop(columns="verdict"), stem=tmp_path / "x")
    empty = sensitivity_plot(TABLE.iloc[:0], stem=tmp_path / "empty")
    assert empty[0].stat().st_size > 0
