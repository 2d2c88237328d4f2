"""Tests of tmeflow.stats._gsea: offline preranked GSEA of a pseudobulk statistic."""

import socket
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tmeflow.core import _genesets as genesets
from tmeflow.stats import _gsea as gsea

REPO = Path(__file__).resolve().parents[3]
HALLMARK = REPO / "config/genesets/mh.all.v2023.1.Mm.symbols.gmt"
PANEL = REPO / "config/markers/mouse_tme.yaml"


def de_table(*, seed: int = 0, shifted: list[str], shift: float = 4.0) -> pd.DataFrame:
    """A run_de-like table: 600 genes with N(0, 1) statistics, ``shifted`` genes + ``shift``."""
    rng = np.random.default_rng(seed)
    genes = [f"Gene{i}" for i in range(600)] + shifted
    stat = rng.normal(0.0, 1.0, size=len(genes))
    stat[-len(shifted) :] += shift
    return pd.DataFrame({"gene": genes, "stat": stat, "method": "pydeseq2"})


@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a socket (a download) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_read_gmt_and_marker_sets() -> None:
    hall = genesets.read_gmt(HALLMARK)
    assert len(hall) == 50
    assert "Isg15" in hall["HALLMARK_INTERFERON_ALPHA_RESPONSE"]
    markers = genesets.marker_sets(PANEL)
    assert "Col1a1" in markers["MARKERS_CAF"]
    assert "Mrc1" in markers["MARKERS_TAM_Mrc1"]  # subtypes become sets too
    sets, collection = gsea.load_gene_sets([HALLMARK], PANEL)
    assert len(sets) == len(hall) + len(markers)
    assert collection["MARKERS_CAF"] == "marker_panel"
    assert collection["HALLMARK_HYPOXIA"] == HALLMARK.name


def test_a_library_name_is_refused_not_downloaded(no_network: None) -> None:
    with pytest.raises(FileNotFoundError, match="never a library name"):
        genesets.read_gmt("MSigDB_Hallmark_2020")
    with pytest.raises(TypeError, match="download"):
        gsea.prerank(de_table(shifted=[]), "MSigDB_Hallmark_2020", cell_type="X")


def test_planted_set_enriched_in_right_direction_offline(no_network: None) -> None:
    up = [f"Up{i}" for i in range(20)]
    down = [f"Down{i}" for i in range(20)]
    table = de_table(shifted=up + down)
    table.loc[table["gene"].isin(down), "stat"] -= 8.0  # these end up at -4
    sets = {
        "PLANTED_UP": up,
        "PLANTED_DOWN": down,
        "RANDOM": [f"Gene{i}" for i in range(0, 200, 8)],
        "TOO_SMALL": ["Gene1", "Gene2"],
    }
    res = gsea.prerank(table, sets, cell_type="TAM", permutations=200, min_size=5, seed=1)
    assert list(res.columns) == gsea.GSEA_COLUMNS
    by = res.set_index("Term")
    assert "TOO_SMALL" not in by.index
    assert by.loc["PLANTED_UP", "NES"] > 1.5 and by.loc["PLANTED_UP", "FDR q-val"] < 0.05
    assert by.loc["PLANTED_DOWN", "NES"] < -1.5 and by.loc["PLANTED_DOWN", "FDR q-val"] < 0.05
    assert by.loc["RANDOM", "FDR q-val"] > 0.05
    assert (res["cell_type"] == "TAM").all() and (res["set_size"] > 0).all()
    assert res["Term"].iat[-1] == "RANDOM"  # sorted by FDR
    again = gsea.prerank(table, sets, cell_type="TAM", permutations=200, min_size=5, seed=1)
    pd.testing.assert_frame_equal(res, again)


def test_no_matching_sets_gives_empty_table_with_note() -> None:
    table = de_table(shifted=[])
    table["gene"] = table["gene"].str.upper()  # e.g. human symbols against mouse sets
    res = gsea.prerank(table, {"S": ["Gene1", "Gene2", "Gene3", "Gene4", "Gene5"]}, cell_type="t")
    assert res.empty and list(res.columns) == gsea.GSEA_COLUMNS
    assert "no gene set" in res.attrs["note"]
    summary = gsea.gsea_summary({"t": res})
    assert summary.loc[0, "n_sets"] == 0 and "no gene set" in summary.loc[0, "note"]


def test_exploratory_tables_are_labelled() -> None:
    up = [f"Up{i}" for i in range(10)]
    table = de_table(shifted=up).assign(method="wilcoxon_exploratory")
    res = gsea.prerank(table, {"UP": up}, cell_type="CAF", permutations=50, seed=0)
    assert (res["de_method"] == "wilcoxon_exploratory").all()
    assert res["note"].str.startswith("exploratory").all()


def test_ranking_drops_missing_and_is_order_independent() -> None:
    table = pd.DataFrame({"gene": ["a", "b", "c", "d"], "stat": [1.0, np.nan, 3.0, 1.0]})
    rnk = gsea.ranking(table)
    assert list(rnk.index) == ["c", "a", "d"]
    assert list(gsea.ranking(table.iloc[::-1]).index) == ["c", "a", "d"]


def test_empty_de_table_of_a_one_condition_design_is_not_tested(tmp_path: Path) -> None:
    from tmeflow.core import _tables as tables
    from tmeflow.stats import _de as de

    empty = de.empty_table(
        "not tested: condition 'alectinib' has no samples: nothing to compare", species="mouse"
    )
    res = gsea.prerank(empty, {"S": ["Gene1", "Gene2", "Gene3", "Gene4", "Gene5"]}, cell_type="CAF")
    assert res.empty and list(res.columns) == gsea.GSEA_COLUMNS
    assert "nothing to compare" in res.attrs["note"]
    assert res.attrs["de_method"] == "not_tested" and res.attrs["n_ranked"] == 0
    # as the workflow reads it back from disk: no attrs, only the header
    tables.write_tsv(empty, tmp_path / "CAF.tsv")
    back = pd.read_csv(tmp_path / "CAF.tsv", sep="\t")
    res2 = gsea.prerank(back, {"S": ["Gene1", "Gene2", "Gene3", "Gene4", "Gene5"]}, cell_type="CAF")
    assert res2.empty and "empty DE table" in res2.attrs["note"]
    summary = gsea.gsea_summary({"CAF": res, "TAM": res2})
    assert summary["n_sets"].eq(0).all() and summary["n_fdr_below"].eq(0).all()
    assert summary["note"].str.startswith("not tested").all()
    assert gsea.gsea_summary({}).empty


def test_prerank_files_runs_every_table_by_file_name(tmp_path) -> None:
    """One result per DE file, keyed and ordered by the file's stem; empty tables say why."""
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(40)]
    good = pd.DataFrame({"gene": genes, "stat": rng.normal(size=40), "method": "pydeseq2"})
    good.to_csv(tmp_path / "TAM.tsv", sep="\t", index=False)
    good.iloc[:0].to_csv(tmp_path / "CAF.tsv", sep="\t", index=False)
    sets = {"UP": genes[:10], "DOWN": genes[-10:]}
    out = gsea.prerank_files(sorted(tmp_path.glob("*.tsv")), sets, permutations=20)
    assert list(out) == ["CAF", "TAM"]
    assert out["CAF"].empty and out["CAF"].attrs["note"].startswith("not tested: empty DE")
    assert set(out["TAM"]["Term"]) == {"UP", "DOWN"}
