"""Tests of tmeflow.stats_plots: the primary-sources figure."""

import pandas as pd

from tmeflow import sources, stats_plots

from .test_sources import make_adata


def test_primary_sources_plot_is_deterministic(tmp_path) -> None:
    adata = make_adata()
    table = sources.expression_sources(adata, "Gas6")
    per = sources.sample_shares(adata, "Gas6").assign(level="cell_type")
    primary = sources.primary_summary({"cell_type": table}, {"cell_type": per})
    conditions = ["ctrl", "alectinib"]
    first = stats_plots.primary_sources_plot(
        primary, per, stem=tmp_path / "a" / "primary", conditions=conditions
    )
    second = stats_plots.primary_sources_plot(
        primary, per, stem=tmp_path / "b" / "primary", conditions=conditions
    )
    assert [p.suffix for p in first] == [".pdf", ".png"]
    for a, b in zip(first, second, strict=True):
        assert a.stat().st_size > 0
        assert a.read_bytes() == b.read_bytes()


def test_primary_sources_plot_without_sources(tmp_path) -> None:
    empty = pd.DataFrame(columns=sources.PRIMARY_COLUMNS)
    per = pd.DataFrame(columns=["level", *sources.SAMPLE_SHARE_COLUMNS])
    out = stats_plots.primary_sources_plot(empty, per, stem=tmp_path / "none", conditions=["a"])
    assert all(p.stat().st_size > 0 for p in out)
