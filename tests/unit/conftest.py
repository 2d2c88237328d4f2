"""Fixtures shared by several unit-test modules."""

import pandas as pd
import pytest
from anndata import AnnData

from tmeflow.stats import _de as de

from ._de_data import REF, TEST, make_adata


@pytest.fixture(scope="module")
def de_data() -> AnnData:
    """The default :func:`make_adata` (DE, GOI and DE-levels tests), once per module."""
    return make_adata()


@pytest.fixture(scope="module")
def de_tables(de_data: AnnData) -> dict[str, pd.DataFrame]:
    """:func:`tmeflow.stats.run_de` per cell type of ``de_data``, ``REF`` vs ``TEST``."""
    return de.run_de(de_data, group_key="cell_type", reference=REF, test=TEST)
