"""The sensitivity figures: a verdict grid and specification curves, deterministic bytes."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection

from tmeflow.plots import sensitivity
from tmeflow.plots._style import save_figure
from tmeflow.plots.sensitivity import (
    VERDICT_FILL,
    _curve_order,
    _null,
    sensitivity_plot,
    specification_curve,
)

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


# The specification curve: H1 has a tie (0.5) broken by label, a setting without an effect and
# intervals; H2 is not computed under the configured run; old tables have no ci columns.
CURVE = pd.DataFrame(
    {
        "setting": ["configured", "configured", "resolution", "resolution", "min_score",
                    "min_score", "doublets", "doublets"],
        "value": ["as run", "as run", "0.4", "0.4", "0.2", "0.2", "off", "off"],
        "hypothesis": HYPS * 4,
        "verdict": ["supported", "not testable", "not supported", "not supported",
                    "supported", "supported", "not recomputable", "not recomputable"],
        "effect": [0.5, np.nan, -0.2, 0.1, 0.5, 0.3, np.nan, np.nan],
        "effect_scale": ["log2 fold change", "", "log2 fold change",
                         "difference in mean logit proportion", "log2 fold change",
                         "difference in mean logit proportion", np.nan, np.nan],
        "p_holm": [0.01, np.nan, 0.4, 0.5, 0.02, 0.03, np.nan, np.nan],
        "ci_low": [0.2, np.nan, -0.6, -0.3, 0.1, np.nan, np.nan, np.nan],
        "ci_high": [0.8, np.nan, 0.2, 0.5, 0.9, np.nan, np.nan, np.nan],
    }
)  # fmt: skip


def test_curve_order_sorts_by_effect_then_label_and_marks_the_configured_run():
    rows = _curve_order(CURVE)
    assert list(pd.unique(rows["hypothesis"])) == HYPS
    h1, h2 = (rows[rows["hypothesis"] == h] for h in HYPS)
    # 0.5 twice: "configured" sorts before "min_score 0.2"; no effect last, rank -1
    assert h1["label"].tolist() == ["resolution 0.4", "configured", "min_score 0.2", "doublets off"]
    assert h1["rank"].tolist() == [0, 1, 2, -1]
    assert h1["configured"].tolist() == [False, True, False, False]
    assert h1["ci_high"].tolist()[:3] == [0.2, 0.8, 0.9]
    assert h2["label"].tolist() == ["resolution 0.4", "min_score 0.2", "configured", "doublets off"]
    assert h2["rank"].tolist() == [0, 1, -1, -1]
    # the order does not depend on the table's row order
    shuffled = _curve_order(CURVE.iloc[::-1].reset_index(drop=True))
    h1_shuffled = shuffled[shuffled["hypothesis"] == HYPS[0]]
    assert h1_shuffled["label"].tolist() == h1["label"].tolist()


def test_curve_order_without_ci_columns_has_nan_intervals():
    rows = _curve_order(CURVE.drop(columns=["ci_low", "ci_high"]))
    assert rows["ci_low"].isna().all() and rows["ci_high"].isna().all()
    assert rows.loc[rows["computed"], "effect"].notna().all()
    assert rows["computed"].sum() == 5


def test_null_is_zero_for_every_scale_the_family_writes():
    for scale in ("log2 fold change", "log2 fold change (apeGLM-shrunk)",
                  "mean log2 enrichment (share of the gene's UMIs / share of all UMIs)",
                  "mean logit share minus logit(0.5)", "difference in mean logit proportion",
                  "difference in mean score sqrt(L * R), log1p CP10k", ""):  # fmt: skip
        assert _null(scale) == 0.0, scale
    assert _null("odds ratio") == 1.0
    assert _null("log odds ratio") == 0.0


@pytest.fixture
def drawn(monkeypatch):
    """The figures specification_curve saves, kept for inspection."""
    figures = []

    def keep(fig, stem, **kwargs):
        figures.append(fig)
        return save_figure(fig, stem, **kwargs)

    monkeypatch.setattr(sensitivity, "save_figure", keep)
    return figures


def test_specification_curve_draws_the_sorted_settings_and_counts(tmp_path, drawn):
    specification_curve(CURVE, stem=tmp_path / "curve")
    ax1, ax2 = drawn[0].axes[:2]
    assert [t.get_text() for t in ax1.get_xticklabels()] == [
        "resolution 0.4", "configured", "min_score 0.2",
    ]  # fmt: skip
    assert ax1.get_xticklabels()[1].get_fontweight() == "bold"
    assert ax1.get_title().endswith("supported in 2 of 3 settings")
    assert ax1.get_xlabel() == "1 setting not computed"
    assert ax1.get_ylabel() == "log2 fold change"
    # the configured point: its own black-edged marker at rank 1, effect 0.5, annotated
    points = [c for c in ax1.collections if isinstance(c, PathCollection)]
    assert [c.get_offsets().shape[0] for c in points] == [3, 1]
    assert points[1].get_offsets().tolist() == [[1.0, 0.5]]
    assert points[1].get_edgecolor().tolist() == [[0.0, 0.0, 0.0, 1.0]]
    assert [t.get_text() for t in ax1.texts] == ["configured"]
    # intervals: vertical segments from ci_low to ci_high in rank order
    segments = [s.tolist() for s in ax1.collections[0].get_segments()]
    assert segments == [[[0, -0.6], [0, 0.2]], [[1, 0.2], [1, 0.8]], [[2, 0.1], [2, 0.9]]]
    assert ax2.get_title().endswith("supported in 1 of 2 settings")
    assert ax2.get_xlabel() == "2 settings not computed, the configured one among them"
    assert ax2.get_ylabel() == "difference in mean logit proportion"
    assert len(ax2.texts) == 0
    # the null line
    assert [line.get_ydata()[0] for line in ax1.lines] == [0.0]


def test_specification_curve_is_deterministic_in_every_format(tmp_path):
    formats = ("pdf", "png", "svg")
    a = specification_curve(CURVE, stem=tmp_path / "a", formats=formats)
    b = specification_curve(CURVE, stem=tmp_path / "b", formats=formats)
    assert [p.suffix for p in a] == [".pdf", ".png", ".svg"]
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    assert [p.suffix for p in specification_curve(CURVE, stem=tmp_path / "d")] == [".pdf", ".png"]


def test_specification_curve_without_intervals_and_empty(tmp_path, drawn):
    with_ci = specification_curve(CURVE, stem=tmp_path / "ci")
    bare = specification_curve(CURVE.drop(columns=["ci_low", "ci_high"]), stem=tmp_path / "bare")
    assert bare[1].read_bytes() != with_ci[1].read_bytes()
    assert len(drawn[1].axes[0].collections[0].get_segments()) == 0
    empty = specification_curve(CURVE.iloc[:0], stem=tmp_path / "empty")
    assert empty[1].stat().st_size > 0
    assert [t.get_text() for t in drawn[2].axes[0].texts] == ["no pre-specified hypotheses"]
    with pytest.raises(ValueError, match="effect_scale"):
        specification_curve(CURVE.drop(columns="effect_scale"), stem=tmp_path / "x")
