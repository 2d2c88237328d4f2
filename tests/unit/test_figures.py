"""Unit tests for tmeflow.figures: reproducible bytes, stable palettes, degenerate inputs."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from matplotlib.figure import Figure

from tmeflow import figures as F

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"


# --------------------------------------------------------------------------- fixtures
def _adata(seed: int = 0, n: int = 120) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix(np.log1p(rng.poisson(1.0, (n, 8))).astype(np.float32))
    adata = ad.AnnData(X=x)
    adata.var_names = ["AXL", "GAS6", "Col1a1", "Adgre1", "PTPRC", "Cd3e", "Pecam1", "Rgs5"]
    adata.obs_names = [f"s1_c{i}" for i in range(n)]
    cell_type = rng.choice(["tumor", "CAF", "TAM", "unassigned", "glia"], n).astype(object)
    cell_type[:3] = np.nan
    adata.obs["cell_type"] = pd.Categorical(cell_type)
    adata.obs["species"] = rng.choice(["human", "mouse", "mixed"], n)
    adata.obs["condition"] = rng.choice(["vehicle", "drug"], n)
    adata.obs["score"] = rng.normal(size=n)
    adata.obsm["X_umap"] = rng.normal(size=(n, 2))
    return adata


def _pseudobulk(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {
            "gene": gene,
            "cell_type": ct,
            "sample": sample,
            "condition": cond,
            "n_cells": 20,
            "counts": 7,
            "cpm": rng.uniform(0, 200),
        }
        for gene in ("AXL", "GAS6")
        for ct in ("tumor", "CAF", "TAM")
        for sample, cond in (("s1", "vehicle"), ("s2", "vehicle"), ("s3", "drug"), ("s4", "drug"))
    ]
    return pd.DataFrame(rows)


def _props(seed: int = 0) -> pd.DataFrame:
    pb = _pseudobulk(seed)
    pb = pb.loc[pb["gene"] == "AXL"].drop(columns=["gene", "counts"])
    pb["fraction"] = pb["cpm"] / pb.groupby("sample")["cpm"].transform("sum")
    return pb.drop(columns="cpm")


def _sources(shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cell_type": ["tumor", "CAF", "TAM", "tumor", "CAF", "TAM"],
            "condition": ["vehicle"] * 3 + ["drug"] * 3,
            "share": [0.5 + shift, 0.3, 0.2 - shift, 0.2, 0.6, 0.2],
            "share_sd": [0.05, np.nan, 0.02, 0.04, 0.1, 0.03],
        }
    )


def _de(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 80
    p = rng.uniform(size=n) ** 4
    de = pd.DataFrame(
        {
            "gene": [f"G{i}" for i in range(n)],
            "log2FoldChange": rng.normal(scale=2, size=n),
            "pvalue": p,
            "padj": np.minimum(p * 10, 1.0),
        }
    )
    de.loc[0, "pvalue"] = 0.0  # drawn at a floor, not at infinity
    de.loc[1, "log2FoldChange"] = np.nan
    de.loc[2, "padj"] = np.nan
    return de


def _qc_obs(seed: int = 0, n: int = 150) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(
        {
            "sample": rng.choice(["s1", "s2", "s10"], n),
            "total_counts": rng.lognormal(8, 0.7, n),
            "n_genes_by_counts": rng.lognormal(7, 0.5, n),
            "pct_counts_mt": rng.uniform(0, 30, n),
        }
    )
    obs["qc_pass"] = obs["pct_counts_mt"] < 20
    return obs


def _gsea(seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    terms = [f"HALLMARK_SET_{i}" for i in range(20)]
    table = pd.DataFrame(
        {
            "Term": terms * 2,
            "NES": rng.normal(scale=2, size=40).astype(str),  # gseapy may hand back strings
            "FDR q-val": rng.uniform(size=40) ** 3,
            "cell_type": ["tumor"] * 20 + ["CAF"] * 20,
        }
    )
    table.loc[0, "FDR q-val"] = 0.0
    return table


def _all_figures(tmp: Path, seed: int) -> list[Path]:
    """Every plotting function once; inputs depend on ``seed``."""
    adata = _adata(seed)
    markers = {"tumor": ["AXL", "GAS6"], "CAF": ["Col1a1"], "TAM": ["Adgre1", "Missing1"]}
    return [
        *F.umap_plot(adata, color="cell_type", stem=tmp / "umap"),
        *F.marker_dotplot(adata, markers=markers, groupby="cell_type", stem=tmp / "dot"),
        *F.genes_of_interest_plot(
            _pseudobulk(seed), gene="AXL", stem=tmp / "goi", conditions=["vehicle", "drug"]
        ),
        *F.composition_plot(_props(seed), stem=tmp / "comp", conditions=["vehicle", "drug"]),
        *F.sources_plot(_sources(seed / 100), gene="GAS6", stem=tmp / "src"),
        *F.volcano_plot(_de(seed), title="drug vs vehicle", stem=tmp / "volc", highlight=["G5"]),
        *F.qc_violin_plot(_qc_obs(seed), stem=tmp / "qc", thresholds={"max_pct_counts_mt": 20}),
        *F.gsea_dotplot(_gsea(seed), stem=tmp / "gsea"),
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, list[Path]]:
    """Two runs with the same inputs and one with different inputs; ``open`` records the
    pyplot figures left open by them."""
    before = plt.get_fignums()
    out: dict = {
        name: _all_figures(tmp_path_factory.mktemp(name), seed)
        for name, seed in (("a", 0), ("b", 0), ("c", 1))
    }
    out["open"] = [n for n in plt.get_fignums() if n not in before]
    return out


def _assert_written(paths: list[Path], stem: Path) -> None:
    assert paths == [stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")]
    pdf, png = paths
    assert pdf.read_bytes().startswith(b"%PDF")
    assert png.read_bytes().startswith(b"\x89PNG")


# --------------------------------------------------------------------------- determinism
def test_every_function_writes_pdf_and_png(runs):
    stems = ["umap", "dot", "goi", "comp", "src", "volc", "qc", "gsea"]
    assert [p.name for p in runs["a"]] == [f"{s}.{e}" for s in stems for e in ("pdf", "png")]
    for path in runs["a"]:
        assert path.stat().st_size > 1000


def test_same_inputs_give_identical_bytes(runs):
    for a, b in zip(runs["a"], runs["b"], strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_different_inputs_give_different_bytes(runs):
    for a, c in zip(runs["a"], runs["c"], strict=True):
        assert a.read_bytes() != c.read_bytes(), a.name


def test_files_carry_no_dates_or_versions(runs):
    import matplotlib

    for path in runs["a"]:
        data = path.read_bytes()
        assert b"CreationDate" not in data
        assert b"ModDate" not in data
        assert matplotlib.__version__.encode() not in data, path.name


def test_no_pyplot_figures_left_open(runs):
    assert runs["open"] == []


_SMALL_FIGURE = """
import sys
from matplotlib.figure import Figure
from tmeflow import figures as F
with F.style():
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1, 2], [2, 0, 1], label="curve")
    ax.set_title("Gas6 and AXL")
    ax.legend()
F.save_figure(fig, sys.argv[1], formats=("pdf", "png", "svg"))
"""


def test_identical_bytes_across_processes_and_hash_seeds(tmp_path, monkeypatch):
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(SCRIPTS)}
    env.pop("SOURCE_DATE_EPOCH", None)
    there = tmp_path / "subprocess" / "fig"
    subprocess.run([sys.executable, "-c", _SMALL_FIGURE, str(there)], check=True, env=env)
    here = tmp_path / "here" / "fig"
    monkeypatch.setattr(sys, "argv", ["-c", str(here)])
    exec(_SMALL_FIGURE, {"__name__": "small_figure"})
    for ext in ("pdf", "png", "svg"):
        theirs = there.with_suffix(f".{ext}").read_bytes()
        assert theirs == here.with_suffix(f".{ext}").read_bytes(), ext


# --------------------------------------------------------------------------- save_figure
def _simple_figure(y: float = 1.0) -> Figure:
    with F.style():
        fig = Figure(figsize=(2, 2))
        fig.add_subplot().plot([0, 1], [0, y])
    return fig


def test_save_figure_creates_parent_and_keeps_dots(tmp_path):
    stem = tmp_path / "deep" / "er" / "qc.sampleA"
    paths = F.save_figure(_simple_figure(), stem)
    _assert_written(paths, stem)


def test_save_figure_svg_is_reproducible(tmp_path):
    (a,) = F.save_figure(_simple_figure(), tmp_path / "a", formats=("svg",))
    (b,) = F.save_figure(_simple_figure(), tmp_path / "b", formats=["svg"])
    assert a.read_bytes() == b.read_bytes()
    assert b"<dc:date>" not in a.read_bytes()


def test_save_figure_dpi_changes_png(tmp_path):
    (lo,) = F.save_figure(_simple_figure(), tmp_path / "lo", formats=("png",), dpi=50)
    (hi,) = F.save_figure(_simple_figure(), tmp_path / "hi", formats=("png",), dpi=200)
    assert lo.stat().st_size < hi.stat().st_size


def test_save_figure_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unsupported figure format"):
        F.save_figure(_simple_figure(), tmp_path / "x", formats=("jpg",))


def test_save_figure_can_close_pyplot_figures(tmp_path):
    fig = plt.figure()
    F.save_figure(fig, tmp_path / "p", close=True)
    assert fig.number not in plt.get_fignums()


def test_style_sets_house_rcparams():
    import matplotlib as mpl

    with F.style():
        assert mpl.rcParams["axes.spines.top"] is False
        assert mpl.rcParams["axes.spines.right"] is False
        assert mpl.rcParams["svg.hashsalt"] == "tmeflow"
    assert mpl.rcParams["axes.spines.top"] is True  # restored afterwards


# --------------------------------------------------------------------------- palettes
def test_label_colors_fixed_for_vocabulary_and_order_independent():
    labels = ["TAM", "zeta", "tumor", "unassigned", "alpha", "CAF", "cluster10", "cluster2"]
    a = F.label_colors(labels)
    b = F.label_colors(reversed(labels))
    c = F.label_colors(pd.Series(labels * 3))
    assert a == b == c
    assert list(a) == list(b)
    assert list(a) == [
        "tumor", "CAF", "TAM", "alpha", "cluster2", "cluster10", "zeta", "unassigned"
    ]  # fmt: skip
    assert a["tumor"] == F.CELL_TYPE_COLORS["tumor"]
    assert a["unassigned"] == F.CELL_TYPE_COLORS["unassigned"]
    assert len(set(a.values())) == len(a)


def test_label_colors_vocabulary_colours_do_not_depend_on_other_labels():
    full = F.label_colors(F.DEFAULT_VOCAB)
    assert len(set(full.values())) == len(F.DEFAULT_VOCAB)
    for label in F.DEFAULT_VOCAB:
        assert F.label_colors([label, "something_else"])[label] == full[label]


def test_label_colors_drops_missing_and_handles_species_and_custom_vocab():
    assert list(F.label_colors(["tumor", np.nan, None])) == ["tumor"]
    assert F.label_colors(["mouse", "human"], vocabulary=F.SPECIES_VOCAB) == {
        "human": F.SPECIES_COLORS["human"],
        "mouse": F.SPECIES_COLORS["mouse"],
    }
    custom = F.label_colors(["Treg", "tumor"], vocabulary=("tumor", "Treg", "Th17"))
    assert list(custom) == ["tumor", "Treg"]
    assert custom["Treg"] == F.label_colors(["Treg"], vocabulary=("tumor", "Treg", "Th17"))["Treg"]


def test_label_order_puts_unassigned_and_na_last():
    assert F.label_order(["NA", "unassigned", "B", "x", "tumor"]) == [
        "tumor", "B", "x", "unassigned", "NA"
    ]  # fmt: skip


def test_condition_colors_follow_given_order():
    a = F.condition_colors(["vehicle", "drug"])
    b = F.condition_colors(["drug", "vehicle"])
    assert list(a) == ["vehicle", "drug"]
    assert a["vehicle"] == b["drug"]  # the reference (first) always gets the same colour
    assert a["vehicle"] != a["drug"]


# --------------------------------------------------------------------------- umap
def test_umap_variants_and_drawing_order(tmp_path):
    adata = _adata()
    for color in ("species", "score"):
        _assert_written(F.umap_plot(adata, color=color, stem=tmp_path / color), tmp_path / color)
    a = F.umap_plot(adata, color="cell_type", stem=tmp_path / "s0", seed=0)
    b = F.umap_plot(adata, color="cell_type", stem=tmp_path / "s1", seed=1)
    assert a[1].read_bytes() != b[1].read_bytes()  # the seed sets which cell is on top
    ordered = F.umap_plot(adata, color="condition", stem=tmp_path / "o", order=["vehicle", "drug"])
    plain = F.umap_plot(adata, color="condition", stem=tmp_path / "p")
    assert ordered[1].read_bytes() != plain[1].read_bytes()


def test_umap_handles_no_cells_and_reports_missing_inputs(tmp_path):
    adata = _adata()
    _assert_written(F.umap_plot(adata[:0].copy(), color="cell_type", stem=tmp_path / "e"),
                    tmp_path / "e")  # fmt: skip
    with pytest.raises(ValueError, match="no obs column 'leiden'"):
        F.umap_plot(adata, color="leiden", stem=tmp_path / "x")
    del adata.obsm["X_umap"]
    with pytest.raises(ValueError, match="X_umap"):
        F.umap_plot(adata, color="cell_type", stem=tmp_path / "x")


# --------------------------------------------------------------------------- marker dot plot
def test_group_stats_values_sparse_and_dense():
    x = np.array([[0.0, 2.0], [1.0, 0.0], [3.0, 4.0], [0.0, 0.0]])
    codes = np.array([0, 0, 1, 1])
    for matrix in (x, sp.csr_matrix(x)):
        mean, frac = F._group_stats(matrix, codes, 2)
        np.testing.assert_allclose(mean, [[0.5, 1.0], [1.5, 2.0]])
        np.testing.assert_allclose(frac, [[0.5, 0.5], [0.5, 0.5]])


def test_marker_dotplot_skips_missing_genes_and_uses_layer(tmp_path, caplog):
    adata = _adata()
    adata.layers["other"] = adata.X.copy() * 2
    markers = {"tumor": ["AXL", "NOT_A_GENE"], "CAF": ["Col1a1"]}
    with caplog.at_level(logging.INFO, logger="tmeflow.figures"):
        x = F.marker_dotplot(adata, markers=markers, groupby="cell_type", stem=tmp_path / "x")
    assert "NOT_A_GENE" in caplog.text
    _assert_written(x, tmp_path / "x")
    lay = F.marker_dotplot(
        adata, markers=markers, groupby="cell_type", stem=tmp_path / "l", layer="other"
    )
    # scaling per gene makes a doubled layer look the same; a different layer would not
    assert lay[1].read_bytes() == x[1].read_bytes()
    with pytest.raises(ValueError, match="no layer 'nope'"):
        F.marker_dotplot(adata, markers=markers, groupby="cell_type", stem=tmp_path / "n",
                         layer="nope")  # fmt: skip


def test_marker_dotplot_without_any_known_gene(tmp_path):
    paths = F.marker_dotplot(
        _adata(), markers={"x": ["NOPE"]}, groupby="cell_type", stem=tmp_path / "none"
    )
    _assert_written(paths, tmp_path / "none")


# --------------------------------------------------------------------------- tables
def test_table_plots_handle_empty_inputs(tmp_path):
    cases = {
        "goi": lambda s: F.genes_of_interest_plot(
            _pseudobulk(), gene="NOT_MEASURED", stem=s, conditions=["vehicle", "drug"]
        ),
        "comp": lambda s: F.composition_plot(_props().iloc[:0], stem=s, conditions=["vehicle"]),
        "src": lambda s: F.sources_plot(_sources().iloc[:0], gene="GAS6", stem=s),
        "volc": lambda s: F.volcano_plot(_de().iloc[:0], title="none", stem=s),
        "volc_nan": lambda s: F.volcano_plot(_de().assign(pvalue=np.nan), title="all NaN", stem=s),
        "gsea": lambda s: F.gsea_dotplot(_gsea().iloc[:0], stem=s),
        "qc": lambda s: F.qc_violin_plot(_qc_obs().iloc[:0], stem=s, thresholds=None),
    }
    for name, call in cases.items():
        _assert_written(call(tmp_path / name), tmp_path / name)
    # an empty volcano says so, and differs from a non-empty one
    full = F.volcano_plot(_de(), title="none", stem=tmp_path / "full")
    assert full[1].read_bytes() != (tmp_path / "volc.png").read_bytes()


def test_condition_order_changes_the_figure(tmp_path):
    a = F.genes_of_interest_plot(
        _pseudobulk(), gene="AXL", stem=tmp_path / "a", conditions=["vehicle", "drug"]
    )
    b = F.genes_of_interest_plot(
        _pseudobulk(), gene="AXL", stem=tmp_path / "b", conditions=["drug", "vehicle"]
    )
    assert a[1].read_bytes() != b[1].read_bytes()
    # a condition missing from the list is drawn after, not dropped
    c = F.composition_plot(_props(), stem=tmp_path / "c", conditions=["vehicle"])
    _assert_written(c, tmp_path / "c")


def test_sources_plot_filters_by_gene(tmp_path):
    both = pd.concat([_sources().assign(gene="GAS6"), _sources(0.2).assign(gene="AXL")])
    a = F.sources_plot(both, gene="GAS6", stem=tmp_path / "a")
    b = F.sources_plot(_sources(), gene="GAS6", stem=tmp_path / "b")
    assert a[1].read_bytes() == b[1].read_bytes()


def test_missing_columns_are_reported(tmp_path):
    with pytest.raises(ValueError, match=r"missing column\(s\) \['cpm'\]"):
        F.genes_of_interest_plot(
            _pseudobulk().drop(columns="cpm"), gene="AXL", stem=tmp_path / "x", conditions=[]
        )
    with pytest.raises(ValueError, match="padj"):
        F.volcano_plot(_de().drop(columns="padj"), title="x", stem=tmp_path / "x")
    with pytest.raises(ValueError, match="none of"):
        F.qc_violin_plot(pd.DataFrame({"sample": ["s1"]}), stem=tmp_path / "x", thresholds=None)


def test_volcano_highlight_changes_the_figure(tmp_path):
    a = F.volcano_plot(_de(), title="t", stem=tmp_path / "a")
    b = F.volcano_plot(_de(), title="t", stem=tmp_path / "b", highlight=["G40"])
    assert a[1].read_bytes() != b[1].read_bytes()


def test_gsea_top_limits_terms(tmp_path):
    a = F.gsea_dotplot(_gsea(), stem=tmp_path / "a", top=3)
    b = F.gsea_dotplot(_gsea(), stem=tmp_path / "b", top=15)
    assert a[1].read_bytes() != b[1].read_bytes()
    one = F.gsea_dotplot(_gsea().drop(columns="cell_type").iloc[:20], stem=tmp_path / "one")
    _assert_written(one, tmp_path / "one")


# --------------------------------------------------------------------------- QC
def test_threshold_spellings():
    samples = ["s1", "s2"]
    spec = {
        "max_pct_counts_mt": 20,
        "total_counts": {"s1": [500, 20000], "s3": 1},
        "nmads": 5,  # not a threshold of a metric: ignored
    }
    assert F._threshold_lines(spec, "pct_counts_mt", samples) == {"s1": [20.0], "s2": [20.0]}
    assert F._threshold_lines(spec, "total_counts", samples) == {"s1": [500.0, 20000.0], "s2": []}
    assert F._threshold_lines(None, "total_counts", samples) == {"s1": [], "s2": []}


def test_qc_violin_thresholds_and_degenerate_groups(tmp_path):
    obs = _qc_obs()
    a = F.qc_violin_plot(obs, stem=tmp_path / "a", thresholds=None)
    b = F.qc_violin_plot(obs, stem=tmp_path / "b", thresholds={"pct_counts_mt": 20})
    assert a[1].read_bytes() != b[1].read_bytes()
    # one cell per sample, a constant sample, no qc_pass column, a missing metric
    tiny = pd.DataFrame(
        {"sample": ["s1", "s2", "s2"], "total_counts": [100.0, 50.0, 50.0],
         "pct_counts_mt": [1.0, np.nan, 2.0]}
    )  # fmt: skip
    _assert_written(F.qc_violin_plot(tiny, stem=tmp_path / "t", thresholds=None), tmp_path / "t")
