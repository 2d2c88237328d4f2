"""The confirmatory figure: a panel per hypothesis, deterministic bytes."""

import numpy as np
import pandas as pd

from tmeflow.plots.confirmatory import confirmatory_plot

TABLE = pd.DataFrame(
    {
        "hypothesis": ["H1: Mmp11 up in CAF", "H2: Nope changed in CAF"],
        "verdict": ["supported", "not testable"],
        "effect": [1.8, np.nan],
        "ci_low": [1.1, np.nan],
        "ci_high": [2.5, np.nan],
        "p_holm": [0.001, np.nan],
        "reason": ["", "not testable: gene 'Nope' absent from the data"],
    }
)
VALUES = pd.DataFrame(
    {
        "hypothesis": ["H1: Mmp11 up in CAF"] * 6,
        "sample": [f"s{i}" for i in range(6)],
        "condition": ["control"] * 3 + ["drug"] * 3,
        "value": [10.0, 12, 11, 40, 38, 45],
        "value_label": "Mmp11 CPM in CAF (pseudobulk)",
    }
)


def test_confirmatory_plot_is_deterministic_and_uses_the_values(tmp_path):
    a = confirmatory_plot(TABLE, VALUES, stem=tmp_path / "a", conditions=["control", "drug"])
    b = confirmatory_plot(TABLE, VALUES, stem=tmp_path / "b", conditions=["control", "drug"])
    assert [p.suffix for p in a] == [".pdf", ".png"]
    assert a[1].read_bytes() == b[1].read_bytes()
    moved = VALUES.assign(value=VALUES["value"][::-1].to_numpy())
    c = confirmatory_plot(TABLE, moved, stem=tmp_path / "c", conditions=["control", "drug"])
    assert c[1].read_bytes() != a[1].read_bytes()


def test_empty_table_gives_a_message_panel(tmp_path):
    out = confirmatory_plot(
        TABLE.iloc[:0], VALUES.iloc[:0], stem=tmp_path / "e", conditions=["a", "b"]
    )
    assert out[1].stat().st_size > 0
