"""The shipped human Hallmark GMT derived from the mouse one (config/genesets/README.md)."""

import gzip
import importlib.util

import pytest

from tmeflow.core import _genesets as genesets

from ...conftest import REPO
from ...paths import SHARED_DATA

GENESETS = REPO / "config" / "genesets"
HUMAN = GENESETS / "h.all.v2023.1.Hs.from_mouse_HCOP.gmt"
MOUSE = GENESETS / "mh.all.v2023.1.Mm.symbols.gmt"
ORTHOLOGS = SHARED_DATA / "genesets" / "orthologs_human_mouse_HCOP.tsv.gz"


def _script():
    spec = importlib.util.spec_from_file_location("derive", GENESETS / "derive_human_hallmark.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_human_hallmark_is_the_mouse_one_in_human_symbols():
    human, mouse = genesets.read_gmt(HUMAN), genesets.read_gmt(MOUSE)
    assert list(human) == list(mouse) and len(human) == 50
    for name, genes in human.items():
        assert genes and all(g == g.upper() for g in genes), name
        # one-to-one orthologs: never more human genes than mouse ones
        assert len(genes) <= len(mouse[name]), name
    kept = sum(map(len, human.values())) / sum(map(len, mouse.values()))
    assert 0.8 < kept < 0.95  # 86.8% (README)
    assert {"VEGFA", "LDHA", "SLC2A1", "NDRG1"} <= set(human["HALLMARK_HYPOXIA"])


def test_one_to_one_drops_genes_with_several_partners(tmp_path):
    table = tmp_path / "orth.tsv.gz"
    with gzip.open(table, "wt") as fh:
        fh.write("human_symbol\tmouse_symbol\n")
        fh.write("AAA\tAaa\nBBB\tBbb\nBBB\tBbb2\nCCC\tCcc\nDDD\tCcc\n")
    gmt = tmp_path / "m.gmt"
    gmt.write_text("SET\tlink\tAaa\tBbb\tBbb2\tCcc\tZzz\n")
    lines, counts = _script().derive(gmt, table)
    assert lines == ["SET\tlink\tAAA"]
    assert counts == [("SET", 5, 1)]


@pytest.mark.skipif(not ORTHOLOGS.is_file(), reason="../shared/data/genesets is absent")
def test_shipped_human_hallmark_is_what_the_script_writes():
    lines, _ = _script().derive(MOUSE, ORTHOLOGS)
    assert HUMAN.read_text() == "".join(f"{line}\n" for line in lines)
