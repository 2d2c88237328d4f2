"""Tests of tmeflow.plots as a whole and of its style: reproducible bytes, saving, rcParams."""

import os
import subprocess
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import pytest
from matplotlib.figure import Figure

from tmeflow.plots import _style, atlas, qc, sources, stats

from .. import _plots_data as D
from .test_qc import METRICS, _cells

SCRIPTS = Path(__file__).resolve().parents[3] / "workflow" / "scripts"


def _all_figures(tmp: Path, seed: int) -> list[Path]:
    """One figure of each kind; inputs depend on ``seed``."""
    adata = D.adata(seed)
    markers = {"tumor": ["AXL", "GAS6"], "CAF": ["Col1a1"], "TAM": ["Adgre1", "Missing1"]}
    conditions = ["vehicle", "drug"]
    return [
        *atlas.umap_plot(adata, color="cell_type", stem=tmp / "umap"),
        *atlas.marker_dotplot(adata, markers=markers, groupby="cell_type", stem=tmp / "dot"),
        *stats.genes_of_interest_plot(
            D.pseudobulk(seed), gene="AXL", stem=tmp / "goi", conditions=conditions
        ),
        *stats.composition_plot(D.props(seed), stem=tmp / "comp", conditions=conditions),
        *sources.sources_plot(
            D.source_table(seed / 100), gene="GAS6", stem=tmp / "src", conditions=conditions
        ),
        *stats.volcano_plot(
            D.de_table(seed), title="drug vs vehicle", stem=tmp / "volc", highlight=["G5"]
        ),
        *qc.qc_sample_plot(_cells(seed=seed), METRICS, sample="s1", stem=tmp / "qc"),
        *stats.gsea_dotplot(D.gsea_table(seed), stem=tmp / "gsea"),
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
from tmeflow.plots import _style as F
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
    with _style.style():
        fig = Figure(figsize=(2, 2))
        fig.add_subplot().plot([0, 1], [0, y])
    return fig


def test_save_figure_creates_parent_and_keeps_dots(tmp_path):
    stem = tmp_path / "deep" / "er" / "qc.sampleA"
    paths = _style.save_figure(_simple_figure(), stem)
    D.assert_written(paths, stem)


def test_save_figure_svg_is_reproducible(tmp_path):
    (a,) = _style.save_figure(_simple_figure(), tmp_path / "a", formats=("svg",))
    (b,) = _style.save_figure(_simple_figure(), tmp_path / "b", formats=["svg"])
    assert a.read_bytes() == b.read_bytes()
    assert b"<dc:date>" not in a.read_bytes()


def test_save_figure_dpi_changes_png(tmp_path):
    (lo,) = _style.save_figure(_simple_figure(), tmp_path / "lo", formats=("png",), dpi=50)
    (hi,) = _style.save_figure(_simple_figure(), tmp_path / "hi", formats=("png",), dpi=200)
    assert lo.stat().st_size < hi.stat().st_size


def test_save_figure_rejects_unknown_format(tmp_path):
    with pytest.raises(ValueError, match="unsupported figure format"):
        _style.save_figure(_simple_figure(), tmp_path / "x", formats=("jpg",))


def test_save_figure_can_close_pyplot_figures(tmp_path):
    fig = plt.figure()
    _style.save_figure(fig, tmp_path / "p", close=True)
    assert fig.number not in plt.get_fignums()


def test_style_sets_house_rcparams():
    import matplotlib as mpl

    with _style.style():
        assert mpl.rcParams["axes.spines.top"] is False
        assert mpl.rcParams["axes.spines.right"] is False
        assert mpl.rcParams["svg.hashsalt"] == "tmeflow"
    assert mpl.rcParams["axes.spines.top"] is True  # restored afterwards
