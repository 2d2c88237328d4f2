"""Tests of tmeflow.plots.stats and tmeflow.plots.sources: genes of interest, sources,
composition, volcano, GSEA and the primary sources."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tmeflow.plots import sources as plot_sources
from tmeflow.plots import stats
from tmeflow.stats import _expression_sources as sources

from .. import _plots_data as D
from ..stats.test_expression_sources import REF, TEST, make_adata

COND = ["vehicle", "drug"]
SCRIPTS = Path(__file__).resolve().parents[3] / "workflow" / "scripts"


def test_table_plots_handle_empty_inputs(tmp_path):
    cases = {
        "goi": lambda s: stats.genes_of_interest_plot(
            D.pseudobulk(), gene="NOT_MEASURED", stem=s, conditions=["vehicle", "drug"]
        ),
        "comp": lambda s: stats.composition_plot(
            D.props().iloc[:0], stem=s, conditions=["vehicle"]
        ),
        "src": lambda s: plot_sources.sources_plot(
            D.source_table().iloc[:0], gene="GAS6", stem=s, conditions=COND
        ),
        "volc": lambda s: stats.volcano_plot(D.de_table().iloc[:0], title="none", stem=s),
        "volc_nan": lambda s: stats.volcano_plot(
            D.de_table().assign(pvalue=np.nan), title="all NaN", stem=s
        ),
        "gsea": lambda s: stats.gsea_dotplot(D.gsea_table().iloc[:0], stem=s),
    }
    for name, call in cases.items():
        D.assert_written(call(tmp_path / name), tmp_path / name)
    # an empty volcano says so, and differs from a non-empty one
    full = stats.volcano_plot(D.de_table(), title="none", stem=tmp_path / "full")
    assert full[1].read_bytes() != (tmp_path / "volc.png").read_bytes()


def test_condition_order_changes_the_figure(tmp_path):
    a = stats.genes_of_interest_plot(
        D.pseudobulk(), gene="AXL", stem=tmp_path / "a", conditions=["vehicle", "drug"]
    )
    b = stats.genes_of_interest_plot(
        D.pseudobulk(), gene="AXL", stem=tmp_path / "b", conditions=["drug", "vehicle"]
    )
    assert a[1].read_bytes() != b[1].read_bytes()
    # a condition missing from the list is drawn after, not dropped
    c = stats.composition_plot(D.props(), stem=tmp_path / "c", conditions=["vehicle"])
    D.assert_written(c, tmp_path / "c")


def test_sources_plot_filters_by_gene(tmp_path):
    both = pd.concat([D.source_table().assign(gene="GAS6"), D.source_table(0.2).assign(gene="AXL")])
    a = plot_sources.sources_plot(both, gene="GAS6", stem=tmp_path / "a", conditions=COND)
    b = plot_sources.sources_plot(
        D.source_table(), gene="GAS6", stem=tmp_path / "b", conditions=COND
    )
    assert a[1].read_bytes() == b[1].read_bytes()


def test_missing_columns_are_reported(tmp_path):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['cpm'\]"):
        stats.genes_of_interest_plot(
            D.pseudobulk().drop(columns="cpm"), gene="AXL", stem=tmp_path / "x", conditions=[]
        )
    with pytest.raises(ValueError, match="padj"):
        stats.volcano_plot(D.de_table().drop(columns="padj"), title="x", stem=tmp_path / "x")


def test_volcano_highlight_changes_the_figure(tmp_path):
    a = stats.volcano_plot(D.de_table(), title="t", stem=tmp_path / "a")
    b = stats.volcano_plot(D.de_table(), title="t", stem=tmp_path / "b", highlight=["G40"])
    assert a[1].read_bytes() != b[1].read_bytes()


def test_gsea_top_limits_terms(tmp_path):
    a = stats.gsea_dotplot(D.gsea_table(), stem=tmp_path / "a", top=3)
    b = stats.gsea_dotplot(D.gsea_table(), stem=tmp_path / "b", top=15)
    assert a[1].read_bytes() != b[1].read_bytes()
    one = stats.gsea_dotplot(
        D.gsea_table().drop(columns="cell_type").iloc[:20], stem=tmp_path / "one"
    )
    D.assert_written(one, tmp_path / "one")


def test_primary_sources_plot_is_deterministic(tmp_path) -> None:
    adata = make_adata()
    table = sources.expression_sources(adata, "Gas6")
    per = sources.sample_shares(adata, "Gas6").assign(level="cell_type")
    primary = sources.primary_summary({"cell_type": table}, {"cell_type": per})
    conditions = ["ctrl", "alectinib"]
    first = plot_sources.primary_sources_plot(
        primary, per, stem=tmp_path / "a" / "primary", conditions=conditions
    )
    second = plot_sources.primary_sources_plot(
        primary, per, stem=tmp_path / "b" / "primary", conditions=conditions
    )
    assert [p.suffix for p in first] == [".pdf", ".png"]
    for a, b in zip(first, second, strict=True):
        assert a.stat().st_size > 0
        assert a.read_bytes() == b.read_bytes()


def test_primary_sources_plot_without_sources(tmp_path) -> None:
    empty = pd.DataFrame(columns=sources.PRIMARY_COLUMNS)
    per = pd.DataFrame(columns=["level", *sources.SAMPLE_SHARE_COLUMNS])
    out = plot_sources.primary_sources_plot(empty, per, stem=tmp_path / "none", conditions=["a"])
    assert all(p.stat().st_size > 0 for p in out)


# ------------------------------------------------------- one-condition design (issue 4)
def test_condition_figures_of_a_one_condition_design(tmp_path) -> None:
    """One arm only (e.g. a single mouse lung): every figure of figures_stats, figures_sources
    and figures_gsea is drawn (message panels where nothing was tested), nothing raises."""
    from tmeflow.stats import _composition as composition
    from tmeflow.stats import _de as de
    from tmeflow.stats import _genes_of_interest as goi
    from tmeflow.stats import _gsea as gsea

    from ..stats.test_de import make_adata as make_de_adata

    conditions = [REF, TEST]
    adata = make_adata()
    one = adata[(adata.obs["condition"].astype(str) == REF).to_numpy()].copy()
    table = sources.expression_sources(one, "Gas6")
    per = sources.sample_shares(one, "Gas6").assign(level="cell_type")
    primary = sources.primary_summary({"cell_type": table}, {"cell_type": per})
    assert set(primary["condition"].astype(str)) <= {REF, "all"}
    written = plot_sources.primary_sources_plot(
        primary, per, stem=tmp_path / "primary", conditions=conditions
    )
    written += plot_sources.sources_plot(
        table, gene="Gas6", stem=tmp_path / "sources", conditions=conditions
    )

    de_adata = make_de_adata(samples_per_arm=2, cells_per_sample=60)
    de_one = de_adata[(de_adata.obs["condition"].astype(str) == "ctrl").to_numpy()].copy()
    res = de.run_de(de_one, group_key="cell_type", reference="ctrl", test="alectinib")
    _, values = goi.genes_of_interest(
        de_one, res, genes=["Gas6"], reference="ctrl", test="alectinib"
    )
    assert len(values) and set(values["condition"]) == {"ctrl"}
    written += stats.genes_of_interest_plot(
        values, gene="Gas6", stem=tmp_path / "goi", conditions=["ctrl", "alectinib"]
    )
    props = composition.proportions(de_one)
    written += stats.composition_plot(
        props, stem=tmp_path / "composition", conditions=["ctrl", "alectinib"]
    )
    for group, de_table in res.items():
        assert de_table.empty
        written += stats.volcano_plot(
            de_table, title=f"{group}: alectinib vs ctrl", stem=tmp_path / f"volcano_{group}"
        )
    gsea_tables = [gsea.prerank(t, {"S": ["Gas6"]}, cell_type=g) for g, t in res.items()]
    written += stats.gsea_dotplot(pd.concat(gsea_tables, ignore_index=True), stem=tmp_path / "g")
    assert len(written) == 2 * (5 + len(res))
    assert all(p.stat().st_size > 0 for p in written)


# ------------------------------------------ one rule for conditions; absent genes (issues 12, 13)
def _run_figures_stats(tmp_path, sources_tables: dict[str, pd.DataFrame]) -> Path:
    """Run the figures_stats adapter on small inputs; return its output folder."""
    import importlib.util
    from types import SimpleNamespace

    from tmeflow.core import _runtime as runtime

    spec = importlib.util.spec_from_file_location("figures_stats", SCRIPTS / "figures_stats.py")
    adapter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(adapter)
    inp = tmp_path / "in"
    (inp / "de").mkdir(parents=True)
    D.de_table().to_csv(inp / "de" / "CAF.tsv", sep="\t", index=False)
    values = D.pseudobulk().replace({"vehicle": REF, "drug": TEST})
    values.to_csv(inp / "values.tsv", sep="\t", index=False)
    D.props().replace({"vehicle": REF, "drug": TEST}).to_csv(
        inp / "props.tsv", sep="\t", index=False
    )
    for gene, table in sources_tables.items():
        table.to_csv(inp / f"{gene}.tsv", sep="\t", index=False)
    out = tmp_path / "figures"
    smk = SimpleNamespace(
        input=SimpleNamespace(
            values=inp / "values.tsv", proportions=inp / "props.tsv", de=inp / "de",
            sources=[inp / f"{g}.tsv" for g in sources_tables],
        ),
        output=SimpleNamespace(composition=[out / "composition.png"], volcano=out / "volcano"),
        params=SimpleNamespace(genes=list(sources_tables), conditions=[REF, TEST], alpha=0.05),
        log=[tmp_path / "log"],
        threads=1,
    )  # fmt: skip
    runtime_setup = runtime.setup
    runtime.setup = lambda *a, **k: None  # keep pytest's logging
    try:
        adapter.main(smk)
    finally:
        runtime.setup = runtime_setup
    return out


def test_sources_figure_puts_the_reference_first_as_everywhere(tmp_path) -> None:
    """The source table lists conditions alphabetically (alectinib first); the sources figure
    still draws ctrl (the reference) first and grey, like goi_<gene> and composition."""
    table = sources.expression_sources(make_adata(), "Gas6")
    assert table["condition"].iloc[0] == TEST  # the order the bug followed
    out = _run_figures_stats(tmp_path, {"Gas6": table})
    ref_first = table.iloc[::-1].reset_index(drop=True)
    assert ref_first["condition"].iloc[0] == REF
    expected = plot_sources.sources_plot(
        ref_first, gene="Gas6", stem=tmp_path / "expected", conditions=[REF, TEST]
    )
    assert (out / "sources_Gas6.png").read_bytes() == expected[1].read_bytes()
    # the row order of the table does not matter, the contrast's order does
    flipped = plot_sources.sources_plot(
        table, gene="Gas6", stem=tmp_path / "flipped", conditions=[TEST, REF]
    )
    assert flipped[1].read_bytes() != expected[1].read_bytes()


def test_absent_gene_of_interest_gets_both_figures_with_the_note(tmp_path) -> None:
    """Issue 13: a gene absent from the data has a note table (gene, note); figures_stats
    drew nothing and stopped with 'sources_plot: missing column(s)'."""
    note = "gene 'Nope' is not in the data"
    present = sources.expression_sources(make_adata(), "Gas6")
    tables = {"Gas6": present, "Nope": pd.DataFrame([{"gene": "Nope", "note": note}])}
    out = _run_figures_stats(tmp_path, tables)
    for kind in ("goi", "sources"):
        for ext in ("pdf", "png"):
            assert (out / f"{kind}_Nope.{ext}").stat().st_size > 1000
    assert plot_sources.source_note(tables["Nope"], "Nope") == note
    assert plot_sources.source_note(present, "Gas6") is None
    # the panels say the note, not the generic "no data" message
    plain = stats.genes_of_interest_plot(
        pd.DataFrame(columns=["gene", "cell_type", "sample", "condition", "cpm"]),
        gene="Nope", stem=tmp_path / "plain", conditions=[REF, TEST],
    )  # fmt: skip
    assert (out / "goi_Nope.png").read_bytes() != plain[1].read_bytes()
    empty = plot_sources.sources_plot(
        present.iloc[:0], gene="Nope", stem=tmp_path / "empty", conditions=[REF, TEST]
    )
    assert (out / "sources_Nope.png").read_bytes() != empty[1].read_bytes()
    with pytest.raises(ValueError, match="missing column"):  # a malformed table still fails
        plot_sources.sources_plot(
            pd.DataFrame({"gene": ["x"]}), gene="x", stem=tmp_path / "x", conditions=[REF]
        )
