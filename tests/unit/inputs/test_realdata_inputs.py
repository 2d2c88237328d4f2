"""Readers, species calls and QC on the real public data sets in ../shared/data.

Skipped (with the reason) when ../shared/data is absent, as in a fresh clone.
"""

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from tmeflow.cells import _qc as qc
from tmeflow.cells import _species as species
from tmeflow.core._errors import InputError
from tmeflow.inputs import _ingest as ingest
from tmeflow.inputs import _read_counts as readers

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"real data not found at {DATA}"),
]


def _is_integer(X: sp.spmatrix) -> bool:
    return bool(np.array_equal(X.data, np.round(X.data)) and (X.data >= 0).all())


def test_hgmm_species_calls_match_majority_species() -> None:
    folder = DATA / "hgmm_100_filtered_mtx"
    a = ingest.ingest_sample(folder, sample="hgmm", condition="mix")
    assert a.shape == (123, 60736)
    species.assign_species(a, mode="xenograft", min_fraction=0.8)

    # independent truth straight from the files: the genome holding most UMIs of each cell
    M = sp.csr_matrix(scipy.io.mmread(str(folder / "matrix.mtx.gz")))  # genes x cells
    with gzip.open(folder / "features.tsv.gz", "rt") as fh:
        ids = np.array([line.split("\t")[0] for line in fh])
    human = np.asarray(M[np.char.startswith(ids, "hg19_")].sum(axis=0)).ravel()
    mouse = np.asarray(M[np.char.startswith(ids, "mm10_")].sum(axis=0)).ravel()
    truth = np.where(human > mouse, "human", "mouse")
    calls = a.obs["species"].astype(str).to_numpy()
    assert (calls == truth).mean() >= 0.99
    assert 60 <= (calls == "human").sum() <= 72 and 50 <= (calls == "mouse").sum() <= 62
    assert a.uns["species"]["prefixes"] == {"human": ["hg19_"], "mouse": ["mm10_"]}
    # prefixes stripped; both species' mito genes recognised
    assert "ACTB" in a.var_names and "Actb" in a.var_names
    qc.qc_metrics(a)
    mito = set(a.var_names[a.var["mt"].to_numpy()])
    assert {"MT-CO1", "mt-Co1"} <= mito and len(mito) == 26
    cont = species.contamination(a)
    assert cont["mouse_in_human_median"] < 0.02 and cont["human_in_mouse_median"] < 0.02
    _, m = qc.filter_cells(a, remove_doublets=False)
    assert m["n_human_kept"] > 40 and m["n_mouse_kept"] > 40
    assert m["threshold_min_counts_human"] > 500 and m["threshold_min_counts_mouse"] > 500


def test_hgmm_raw_h5ad_holds_filtered_counts() -> None:
    raw = readers.read_counts(DATA / "hgmm_100_raw_nonzero.h5ad", sample="hgmm_raw")
    filt = readers.read_counts(DATA / "hgmm_100_filtered_mtx", sample="hgmm")
    assert raw.shape == (118_098, 60_736)
    assert list(raw.var_names) == list(filt.var_names)
    sub = raw[filt.obs_names]
    assert (sub.X != filt.X).nnz == 0


def test_heart_cellranger2_h5() -> None:
    a = ingest.ingest_sample(
        DATA / "heart_1k_v2" / "filtered_gene_bc_matrices_h5.h5", sample="heart", condition="e18"
    )
    assert a.shape == (712, 31053)
    assert isinstance(a.X, sp.csr_matrix) and a.X.dtype == np.float32
    assert _is_integer(a.X)
    assert a.X.sum() > 1e6
    assert set(a.var["genome"]) == {"mm10"}
    assert a.var["gene_ids"].str.startswith("ENSMUSG").all()
    assert {"Col1a1", "Postn", "Dcn"} <= set(a.var_names)
    assert a.var_names.is_unique
    species.assign_species(a, mode="mouse")
    assert list(a.var_names) == list(a.var["feature_name"])  # nothing to strip


def test_tabula_muris_symbol_only_features() -> None:
    a = ingest.ingest_sample(DATA / "tabula_muris_lung_P7_8", sample="lung", condition="normal")
    assert a.shape == (625, 23433)
    assert {"Gas6", "Mmp11", "Col1a1", "Pdgfra"} <= set(a.var_names)
    assert (a.var["gene_ids"] == a.var["gene_symbols"]).all()
    assert _is_integer(a.X)
    assert a.obs_names[0].startswith("lung_")


def test_zilionis_h5ad() -> None:
    a = ingest.ingest_sample(
        DATA / "zilionis_lung_cd45" / "zilionis_lung_cd45_800.h5ad",
        sample="zil",
        condition="tumour",
        extra={"animal_group": "KP"},
    )
    assert a.shape == (800, 24248)
    assert _is_integer(a.X)
    assert a.obs["major_cell_type"].value_counts().tolist() == [200, 200, 200, 200]
    assert a.obs["barcode"].iat[0] == "h_1_1_bc0165"  # the h5ad's obs name
    assert "barcode_input" in a.obs  # its own 'barcode' column is kept, renamed
    assert set(a.obs["animal_group"]) == {"KP"}
    assert a.uns["ingest"]["symbols_recased"] == 0  # no species given: names as in the file


def test_zilionis_upper_case_mouse_symbols_get_the_mouse_spelling() -> None:
    # the deposit writes mouse genes upper-case (GAS6); the panels and gene sets are mouse-case
    path = DATA / "zilionis_lung_cd45" / "zilionis_lung_cd45_800.h5ad"
    a = ingest.ingest_sample(
        path, sample="zil", condition="tumour", species="mouse", symbol_reference=["H2-Ab1"]
    )
    assert a.uns["ingest"]["symbols_recased"] > 20_000
    names = set(a.var_names)
    assert {"Gas6", "Cd79a", "Ncr1", "S100a8", "Cd3e", "H2-Ab1"} <= names
    assert "GAS6" not in names and a.var.loc["Gas6", "symbol_input"] == "GAS6"
    assert a.var_names.is_unique and a.n_vars == 24_248
    assert _is_integer(a.X)
    keep = ingest.ingest_sample(
        path, sample="zil", condition="tumour", species="mouse", symbol_case="keep"
    )
    assert "GAS6" in keep.var_names and keep.uns["ingest"]["symbols_recased"] == 0


def test_hgmm_raw_cell_calling_recovers_the_filtered_cells() -> None:
    a = ingest.ingest_sample(DATA / "hgmm_100_raw_nonzero.h5ad", sample="hgmm", condition="mix")
    info = a.uns["ingest"]["cell_calling"]
    assert info["looks_raw"] and info["called"] and info["n_barcodes"] == 118_098
    with gzip.open(DATA / "hgmm_100_filtered_mtx" / "barcodes.tsv.gz", "rt") as fh:
        filtered = {line.strip() for line in fh}
    called = set(a.obs["barcode"])
    recovered = len(called & filtered) / len(filtered)
    # measured: 122 cells called at 1,071 UMIs, 122 of the 123 filtered barcodes (99.2%)
    assert recovered >= 0.9
    assert len(called) < 2 * len(filtered)
    assert 500 < info["cutoff_umi"] < 3000
    assert ingest.ingest_report(a)["cell_calling_cutoff_umi"] == info["cutoff_umi"]
    with pytest.raises(InputError, match="looks like an unfiltered"):
        ingest.ingest_sample(
            DATA / "hgmm_100_raw_nonzero.h5ad", sample="hgmm", condition="mix", cell_calling="never"
        )


def test_hgmm_contamination_reported_and_plotted(tmp_path: Path) -> None:
    from tmeflow.plots import qc as qc_plots

    a = ingest.ingest_sample(DATA / "hgmm_100_filtered_mtx", sample="hgmm", condition="mix")
    species.assign_species(a, mode="xenograft")
    row = species.species_report(a, mode="xenograft")
    # measured: 0.18% mouse UMIs in human cells, 0.29% human UMIs in mouse cells (medians)
    assert 0 < row["contamination_mouse_in_human_median"] < 0.01
    assert 0 < row["contamination_human_in_mouse_median"] < 0.01
    assert row["prefixes"] == "human:hg19_;mouse:mm10_"
    out = qc_plots.contamination_plot(
        pd.DataFrame([{"sample": "hgmm", **row}]), stem=tmp_path / "c"
    )
    assert all(p.stat().st_size > 1000 for p in out)
