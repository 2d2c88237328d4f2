"""Unit tests for tmeflow.inputs._gene_names: unique names and the mouse spelling of symbols."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow.inputs import _gene_names as genenames


def test_make_unique_is_deterministic() -> None:
    assert genenames.make_unique(["a", "b", "a", "a-1", "a"]) == ["a", "b", "a-2", "a-1", "a-3"]


def test_duplicate_symbols_unique_in_file_order() -> None:
    assert genenames.make_unique(["A", "B", "A", "A-1", "A"]) == ["A", "B", "A-2", "A-1", "A-3"]


@pytest.mark.parametrize(
    ("upper", "mouse"),
    [("GAS6", "Gas6"), ("HBA-A1", "Hba-a1"), ("MT-CO1", "mt-Co1"), ("LY6C2", "Ly6c2"),
     ("0610007P14RIK", "0610007P14Rik"), ("4930401C15RIK2", "4930401C15Rik2"),
     ("ENSMUSG00000031451", "ENSMUSG00000031451")],
)  # fmt: skip
def test_mouse_symbol_spelling(upper, mouse):
    assert genenames.mouse_symbol(upper) == mouse


def test_repair_mouse_symbol_case_only_for_all_upper_names():
    adata = ad.AnnData(
        X=sp.csr_matrix(np.ones((2, 4), dtype=np.float32)),
        var=pd.DataFrame(index=["GAS6", "H2-AB1", "MT-ND1", "CD74"]),
    )
    assert genenames.repair_mouse_symbol_case(adata, ["H2-Ab1", "Cd74"]) == 4
    assert list(adata.var_names) == ["Gas6", "H2-Ab1", "mt-Nd1", "Cd74"]
    assert list(adata.var["symbol_input"]) == ["GAS6", "H2-AB1", "MT-ND1", "CD74"]
    # names with any lower-case letter (mouse-case data, a xenograft's mm10_ prefixes) stay
    mixed = ad.AnnData(var=pd.DataFrame(index=["GRCh38_GAS6", "mm10_Gas6", "GAPDH"]))
    assert genenames.repair_mouse_symbol_case(mixed) == 0
    assert list(mixed.var_names) == ["GRCh38_GAS6", "mm10_Gas6", "GAPDH"]
