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


# ------------------------------------------------------- one-condition design (issue 4)
def test_condition_figures_of_a_one_condition_design(tmp_path) -> None:
    """One arm only (e.g. a single mouse lung): every figure of figures_stats, figures_sources
    and figures_gsea is drawn (message panels where nothing was tested), nothing raises."""
    from tmeflow import composition, de, figures, goi, gsea

    from .test_de import make_adata as make_de_adata
    from .test_sources import REF, TEST

    conditions = [REF, TEST]
    adata = make_adata()
    one = adata[(adata.obs["condition"].astype(str) == REF).to_numpy()].copy()
    table = sources.expression_sources(one, "Gas6")
    per = sources.sample_shares(one, "Gas6").assign(level="cell_type")
    primary = sources.primary_summary({"cell_type": table}, {"cell_type": per})
    assert set(primary["condition"].astype(str)) <= {REF, "all"}
    written = stats_plots.primary_sources_plot(
        primary, per, stem=tmp_path / "primary", conditions=conditions
    )
    written += figures.sources_plot(table, gene="Gas6", stem=tmp_path / "sources")

    de_adata = make_de_adata(samples_per_arm=2, cells_per_sample=60)
    de_one = de_adata[(de_adata.obs["condition"].astype(str) == "ctrl").to_numpy()].copy()
    res = de.run_de(de_one, group_key="cell_type", reference="ctrl", test="alectinib")
    _, values = goi.genes_of_interest(
        de_one, res, genes=["Gas6"], reference="ctrl", test="alectinib"
    )
    assert len(values) and set(values["condition"]) == {"ctrl"}
    written += figures.genes_of_interest_plot(
        values, gene="Gas6", stem=tmp_path / "goi", conditions=["ctrl", "alectinib"]
    )
    props = composition.proportions(de_one)
    written += figures.composition_plot(
        props, stem=tmp_path / "composition", conditions=["ctrl", "alectinib"]
    )
    for group, de_table in res.items():
        assert de_table.empty
        written += figures.volcano_plot(
            de_table, title=f"{group}: alectinib vs ctrl", stem=tmp_path / f"volcano_{group}"
        )
    gsea_tables = [gsea.prerank(t, {"S": ["Gas6"]}, cell_type=g) for g, t in res.items()]
    written += figures.gsea_dotplot(pd.concat(gsea_tables, ignore_index=True), stem=tmp_path / "g")
    assert len(written) == 2 * (5 + len(res))
    assert all(p.stat().st_size > 0 for p in written)
