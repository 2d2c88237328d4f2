"""The R export: plain files that SingleCellExperiment and Seurat load (in real R, if present)."""

import gzip
import shutil
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from tmeflow.export import _r_bundle as rb

REPO = Path(__file__).resolve().parents[3]
READER = REPO / "workflow" / "scripts" / "R" / "read_tmeflow.R"


def _species_object(seed=0, n_cells=60, n_genes=40):
    rng = np.random.default_rng(seed)
    counts = sp.csr_matrix(rng.poisson(0.8, (n_cells, n_genes)).astype(np.float32))
    obs = pd.DataFrame(
        {
            "author_cell_type": pd.Categorical(rng.choice(["CAF", "TAM"], n_cells)),
            "condition": rng.choice(["control", "alectinib"], n_cells),
            "total_counts": np.asarray(counts.sum(axis=1)).ravel(),
        },
        index=[f"s1_AAAC{i:04d}-1" for i in range(n_cells)],
    )
    var = pd.DataFrame(
        {"gene_symbol": [f"Gene_{i}" for i in range(n_genes)]},
        index=[f"ENSMUSG{i:011d}" for i in range(n_genes)],
    )
    adata = ad.AnnData(X=counts.copy(), obs=obs, var=var)
    adata.raw = adata.copy()
    adata.obsm["X_umap"] = rng.normal(size=(n_cells, 2))
    adata.obsm["X_scVI"] = rng.normal(size=(n_cells, 5))
    return adata


def test_r_folder_holds_the_counts_genes_by_cells_and_every_annotation(tmp_path):
    adata = _species_object()
    written = rb.write_r_folder(adata, tmp_path / "mouse")
    names = sorted(p.name for p in written)
    assert set(rb.R_FILES) <= set(names)
    assert {"reduction_umap.tsv.gz", "reduction_scVI.tsv.gz"} <= set(names)
    with gzip.open(tmp_path / "mouse" / "matrix.mtx.gz") as fh:
        mat = scipy.io.mmread(fh)
    assert mat.shape == (adata.n_vars, adata.n_obs)  # genes x cells
    np.testing.assert_array_equal(mat.toarray(), adata.raw.X.toarray().T)
    obs = pd.read_csv(tmp_path / "mouse" / "obs.tsv.gz", sep="\t", index_col=0)
    assert list(obs.index) == list(adata.obs_names)
    assert list(obs["author_cell_type"]) == list(adata.obs["author_cell_type"].astype(str))
    # the same input gives the same bytes
    again = rb.write_r_folder(adata, tmp_path / "again")
    for a, b in zip(sorted(written), sorted(again), strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_r_folder_refuses_non_counts(tmp_path):
    adata = _species_object()
    adata.raw = None
    with pytest.raises(ValueError, match="no raw counts"):
        rb.write_r_folder(adata, tmp_path / "x")
    adata.layers["counts"] = adata.X * 0.5
    with pytest.raises(ValueError, match="non-integer"):
        rb.write_r_folder(adata, tmp_path / "x")


def _r_has(*packages: str) -> bool:
    if shutil.which("Rscript") is None:
        return False
    code = "; ".join(f"suppressMessages(library({p}))" for p in packages)
    return subprocess.run(["Rscript", "-e", code], capture_output=True).returncode == 0


@pytest.mark.parametrize(
    ("klass", "packages"),
    [
        ("SingleCellExperiment", ("Matrix", "SingleCellExperiment")),
        ("Seurat", ("Matrix", "SeuratObject")),
    ],
)
def test_r_loads_the_folder(tmp_path, klass, packages):
    """A real R session builds the object: dimensions, total counts, a label and the UMAP."""
    if not _r_has(*packages):
        pytest.skip(f"R with {', '.join(packages)} is not installed")
    adata = _species_object(seed=1)
    rb.write_r_folder(adata, tmp_path / "mouse")
    if klass == "SingleCellExperiment":
        probe = (
            'x <- read_tmeflow(d); m <- SummarizedExperiment::assay(x, "counts");'
            "cat(nrow(x), ncol(x), sum(m), as.character(x$author_cell_type[1]),"
            ' ncol(SingleCellExperiment::reducedDim(x, "UMAP")), sep = "\\n")'
        )
    else:
        probe = (
            'x <- read_tmeflow(d, as = "Seurat");'
            ' m <- SeuratObject::GetAssayData(x, slot = "counts");'
            "cat(nrow(x), ncol(x), sum(m), as.character(x$author_cell_type[1]),"
            ' ncol(SeuratObject::Embeddings(x, "umap")), sep = "\\n")'
        )
    code = f'source("{READER}"); d <- "{tmp_path / "mouse"}"; {probe}'
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    n_genes, n_cells, total, label, umap = out.stdout.split()
    assert (int(n_genes), int(n_cells)) == (adata.n_vars, adata.n_obs)
    assert float(total) == pytest.approx(float(adata.raw.X.sum()))
    assert label == str(adata.obs["author_cell_type"].iloc[0])
    assert int(umap) == 2
