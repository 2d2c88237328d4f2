"""How the confirmatory verdicts hold up across the sensitivity table's settings."""

import numpy as np
import pandas as pd
import pytest

from tmeflow.stats import _robustness as robustness

TABLE = pd.DataFrame(
    {
        "hypothesis": ["H1: up", "H2: null", "H3: gone"],
        "kind": ["change", "change", "source"],
        "verdict": ["supported", "not supported", "not testable"],
        "effect": [1.0, 0.1, np.nan],
    }
)


def _sens(rows):
    return pd.DataFrame(rows, columns=["setting", "value", "hypothesis", "verdict"])


SENS = _sens(
    [
        ("configured", "as run", "H1: up", "supported"),
        ("configured", "as run", "H2: null", "not supported"),
        ("configured", "as run", "H3: gone", "not testable"),
        ("resolution", "0.4", "H1: up", "supported"),
        ("resolution", "0.4", "H2: null", "supported"),
        ("resolution", "0.4", "H3: gone", "not testable"),
        ("doublets", "off", "H1: up", "not recomputable"),
        ("doublets", "off", "H2: null", "not recomputable"),
        ("doublets", "off", "H3: gone", "not recomputable"),
        ("marker_out", "CAF:Dcn", "H1: up", "inconclusive"),
        ("marker_out", "CAF:Dcn", "H2: null", "not supported"),
        ("marker_out", "CAF:Dcn", "H3: gone", "not available"),
    ]
)


def test_counts_shares_and_the_settings_that_change_a_verdict():
    out = robustness.robustness(TABLE, SENS)
    assert list(out.columns) == [
        "hypothesis", "kind", "verdict", *robustness.ROBUSTNESS_COLUMNS, "effect"
    ]  # fmt: skip
    by = out.set_index("hypothesis")
    # H1: resolution (supported) and marker_out (inconclusive) computed; doublets not
    assert by.loc["H1: up", "n_settings"] == 2
    assert by.loc["H1: up", "share_supported"] == pytest.approx(2 / 3)
    assert by.loc["H1: up", "verdict_changed_by"] == "marker_out CAF:Dcn"
    assert by.loc["H2: null", "share_supported"] == pytest.approx(1 / 3)
    assert by.loc["H2: null", "verdict_changed_by"] == "resolution 0.4"
    # H3: only one setting recomputed (marker_out is not available), none supports
    assert by.loc["H3: gone", "n_settings"] == 1
    assert by.loc["H3: gone", "share_supported"] == 0
    assert by.loc["H3: gone", "verdict_changed_by"] == ""
    pd.testing.assert_frame_equal(out[TABLE.columns], TABLE)  # the table itself unchanged


def test_a_hypothesis_without_sensitivity_rows_has_no_share():
    out = robustness.robustness(TABLE, SENS[SENS["hypothesis"] != "H3: gone"])
    row = out.set_index("hypothesis").loc["H3: gone"]
    assert row["n_settings"] == 0 and np.isnan(row["share_supported"])


def test_sensitivity_of_another_family_is_refused():
    other = SENS.assign(hypothesis=SENS["hypothesis"].str.replace("H1: up", "H1: down"))
    with pytest.raises(ValueError, match="lacks"):
        robustness.robustness(TABLE, other)
