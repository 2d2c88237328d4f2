"""CELLxGENE export: one file per species, checked field by field (schema 7.x)."""

import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import yaml

from tmeflow.core import _h5ad as h5ad
from tmeflow.core import _panel as panel
from tmeflow.embed import _integrate as integrate
from tmeflow.export import _cellxgene as export

REPO = Path(__file__).resolve().parents[3]
SETTINGS = {
    "title": "test",
    "assay_ontology_term_id": "EFO:0009922",
    "disease_ontology_term_id": "MONDO:0004992",
    "suspension_type": "cell",
    "mouse": {
        "tissue_type": "tissue",
        "tissue_ontology_term_id": "UBERON:0002072",
        "development_stage_ontology_term_id": "unknown",
        "sex_ontology_term_id": "PATO:0000383",
    },
    "human": {
        "tissue_type": "tissue",
        "tissue_ontology_term_id": "UBERON:0002072",
        "development_stage_ontology_term_id": "unknown",
        "sex_ontology_term_id": "unknown",
        "self_reported_ethnicity_ontology_term_id": "unknown",
    },
    "cell_ontology": {"CAF": "CL:0000057", "TAM": "CL:0000235", "tumor": "CL:0001064"},
}


def xenograft(*, gene_ids: bool = True, seed: int = 0) -> ad.AnnData:
    """30 human tumour cells on 8 human genes, 40 mouse CAF/TAM/unassigned on 12 mouse genes."""
    rng = np.random.default_rng(seed)
    n_h, n_m, g_h, g_m = 30, 40, 8, 12
    x = np.zeros((n_h + n_m, g_h + g_m), dtype=np.int64)
    x[:n_h, :g_h] = rng.poisson(5, (n_h, g_h))
    x[n_h:, g_h:] = rng.poisson(5, (n_m, g_m))
    x[n_h:, :2] = rng.poisson(0.3, (n_m, 2))  # ambient human reads in mouse cells
    x[:, 0] += 1  # no cell without human-or-mouse counts
    x[n_h:, g_h] += 1
    symbols = [f"HG{i}" for i in range(g_h)] + [f"Mg{i}" for i in range(g_m)]
    var = pd.DataFrame(
        {"species": pd.Categorical(["human"] * g_h + ["mouse"] * g_m)}, index=symbols
    )
    if gene_ids:
        var["gene_ids"] = [f"GRCh38_ENSG{i:011d}.3" for i in range(g_h)] + [
            f"mm10___ENSMUSG{i:011d}" for i in range(g_m)
        ]
    labels = ["tumor"] * n_h + list(rng.choice(["CAF", "TAM", "unassigned"], n_m))
    obs = pd.DataFrame(
        {
            "sample": [f"s{i % 3}" for i in range(n_h + n_m)],
            "condition": ["control", "treated"] * ((n_h + n_m) // 2),
            "species": pd.Categorical(["human"] * n_h + ["mouse"] * n_m),
            "cell_type": pd.Categorical(labels),
            "cell_subtype": pd.Categorical(labels),
        },
        index=[f"c{i}" for i in range(n_h + n_m)],
    )
    adata = ad.AnnData(X=sp.csr_matrix(x), obs=obs, var=var)
    integrate.normalise(adata)
    adata.obsm["X_scVI"] = rng.normal(size=(adata.n_obs, 4)).astype(np.float32)
    adata.obsm["X_umap"] = rng.normal(size=(adata.n_obs, 2)).astype(np.float32)
    return adata


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, ad.AnnData]:
    """Each species' export, written and read back."""
    folder = tmp_path_factory.mktemp("export")
    adata = xenograft()
    out = {}
    for species in export.export_species("xenograft"):
        path = folder / f"{species}.h5ad"
        h5ad.write_h5ad(export.to_cellxgene(adata, species, SETTINGS), path)
        out[species] = ad.read_h5ad(path)
    return out


def test_normalise_records_log1p_as_scanpy():
    assert xenograft().uns["log1p"] == {"base": None}


@pytest.mark.parametrize("species", ["human", "mouse"])
def test_each_file_passes_the_field_checks(files, species):
    assert export.problems(files[species]) == []


@pytest.mark.parametrize("species", ["human", "mouse"])
def test_matrices_read_from_the_file_give_the_same_export(tmp_path, species):
    """The workflow's export reads each species' rows from the file (h5ad.read_rows)."""
    from functools import partial

    adata = xenograft()
    keep = sp.diags((np.arange(adata.n_obs) != 3).astype(np.float32))  # cell 3: no counts,
    adata.X = sp.csr_matrix(keep @ adata.X)  # left out of both exports
    adata.layers["counts"] = sp.csr_matrix(keep @ adata.layers["counts"]).astype(np.int32)
    for mat in (adata.X, adata.layers["counts"]):
        mat.eliminate_zeros()
    path = tmp_path / "annotated.h5ad"
    h5ad.write_h5ad(adata, path)
    bare = h5ad.read_h5ad(path, skip=("X", "layers", "obsp"))
    read = partial(h5ad.read_rows, path, dtype=np.float32, block=7)
    got = export.to_cellxgene(bare, species, SETTINGS, read=read)
    want = export.to_cellxgene(adata, species, SETTINGS)
    assert got.n_obs == want.n_obs == (29 if species == "human" else 40)
    for a, b in ((got.X, want.X), (got.raw.X, want.raw.X)):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a.toarray(), b.toarray())
    pd.testing.assert_frame_equal(got.obs, want.obs)
    pd.testing.assert_frame_equal(got.var, want.var)


def test_files_hold_no_null_elements(tmp_path):
    """anndata < 0.12 (cellxgene-schema 7.1 pins 0.11) cannot read None ("null") elements."""
    import h5py

    path = tmp_path / "mouse.h5ad"
    h5ad.write_h5ad(export.to_cellxgene(xenograft(), "mouse", SETTINGS), path)
    nulls = []
    with h5py.File(path) as f:
        f.visititems(
            lambda name, obj: (
                nulls.append(name) if obj.attrs.get("encoding-type") == "null" else None
            )
        )
    assert nulls == []


def test_one_file_per_species_with_its_cells_and_genes(files):
    adata = xenograft()
    human, mouse = files["human"], files["mouse"]
    assert list(human.obs_names) == list(adata.obs_names[adata.obs["species"] == "human"])
    assert list(mouse.obs_names) == list(adata.obs_names[adata.obs["species"] == "mouse"])
    assert all(re.fullmatch(r"ENSG\d{11}", g) for g in human.var_names)
    assert all(re.fullmatch(r"ENSMUSG\d{11}", g) for g in mouse.var_names)
    assert human.n_vars == 8 and mouse.n_vars == 12
    assert list(mouse.var["gene_symbol"]) == [f"Mg{i}" for i in range(12)]
    assert human.uns["organism_ontology_term_id"] == "NCBITaxon:9606"
    assert mouse.uns["organism_ontology_term_id"] == "NCBITaxon:10090"
    assert export.export_species("mouse") == ["mouse"]


def test_raw_holds_the_counts_and_x_the_normalised_values(files):
    adata = xenograft()
    mouse = files["mouse"]
    cells = adata.obs["species"] == "mouse"
    genes = (adata.var["species"] == "mouse").to_numpy()
    expected = adata[cells.to_numpy()].layers["counts"][:, genes].toarray()
    raw = mouse.raw.X.toarray()
    np.testing.assert_array_equal(raw, expected)
    assert np.array_equal(raw, np.round(raw))
    np.testing.assert_allclose(mouse.X.toarray(), adata[cells.to_numpy()].X[:, genes].toarray())
    assert "feature_is_filtered" not in mouse.raw.var
    assert mouse.var["feature_is_filtered"].dtype == bool
    assert not mouse.var["feature_is_filtered"].any()


def test_obs_fields_and_dtypes(files):
    human, mouse = files["human"], files["mouse"]
    for f in (human, mouse):
        for col in export.REQUIRED_OBS:
            kind = f.obs[col].dtype.name
            assert kind == ("bool" if col == "is_primary_data" else "category"), col
        assert not f.obs["is_primary_data"].any()
        assert (f.obs["donor_id"].astype(str) == f.obs["sample"].astype(str)).all()
        assert set(f.obs["suspension_type"]) == {"cell"}
        assert set(f.obs["assay_ontology_term_id"]) == {"EFO:0009922"}
        assert "cell_type" not in f.obs and "author_cell_type" in f.obs
        assert f.uns["default_embedding"] == "X_umap"
        assert set(f.obsm) == {"X_scVI", "X_umap"}
    assert set(mouse.obs["self_reported_ethnicity_ontology_term_id"]) == {"na"}
    assert set(human.obs["self_reported_ethnicity_ontology_term_id"]) == {"unknown"}
    assert set(mouse.obs["sex_ontology_term_id"]) == {"PATO:0000383"}
    assert set(human.obs["cell_type_ontology_term_id"]) == {"CL:0001064"}
    obs = mouse.obs
    pairs = set(zip(obs["author_cell_type"], obs["cell_type_ontology_term_id"], strict=True))
    assert pairs <= {("CAF", "CL:0000057"), ("TAM", "CL:0000235"), ("unassigned", "unknown")}
    assert ("unassigned", "unknown") in pairs


def test_symbols_without_gene_ids_are_flagged(tmp_path):
    out = export.to_cellxgene(xenograft(gene_ids=False), "mouse", SETTINGS)
    assert list(out.var_names) == [f"Mg{i}" for i in range(12)]
    assert out.uns["tmeflow_export"]["var_index"] == "symbol"
    assert "var has reserved column 'feature_name'" in export.problems(out)


def test_problems_finds_broken_fields(files):
    broken = files["mouse"].copy()
    broken.obs["donor_id"] = broken.obs["donor_id"].astype(str)
    broken.obs["cell_type"] = "x"
    del broken.uns["default_embedding"]
    found = "\n".join(export.problems(broken))
    assert "obs['donor_id'] is not categorical" in found
    assert "reserved column 'cell_type'" in found
    assert "uns lacks 'default_embedding'" in found


def test_cell_ontology_mapping_is_checked_against_the_panel():
    assert export.check_cell_ontology({"CAF": "CL:0000057"}, ["CAF"]) == []
    assert export.check_cell_ontology({}, ["CAF"])  # a warning
    with pytest.raises(ValueError, match="not cell-type labels"):
        export.check_cell_ontology({"Caf": "CL:0000057"}, ["CAF"])
    with pytest.raises(ValueError, match="neither CL"):
        export.check_cell_ontology({"CAF": "fibroblast"}, ["CAF"])


def test_default_mapping_covers_the_shipped_panel():
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    labels = export.panel_labels(panel.load_panels(REPO / "config/markers/mouse_tme.yaml"))
    assert export.check_cell_ontology(config["export"]["cell_ontology"], labels) == []


def test_shipped_default_terms_of_labels_another_panel_lacks_are_ignored():
    defaults = {"CAF": "CL:0000057", "epithelial": "CL:0000066"}
    # a human-only panel has no `epithelial`: the merged default is not a typo
    assert export.check_cell_ontology(defaults, ["CAF"], defaults=defaults) == []
    # ... but a key the user set (another value, or a new key) still must be a label
    with pytest.raises(ValueError, match="epithelial"):
        export.check_cell_ontology(
            {**defaults, "epithelial": "CL:0000000"}, ["CAF"], defaults=defaults
        )
    with pytest.raises(ValueError, match="Caf"):
        export.check_cell_ontology({**defaults, "Caf": "CL:0000057"}, ["CAF"], defaults=defaults)


def test_subset32_equals_fancy_indexing_as_float32():
    rng = np.random.default_rng(0)
    counts = sp.random(40, 30, density=0.2, format="csr", random_state=1, dtype=np.float64)
    counts.data = np.ceil(counts.data * 10)
    counts = counts.astype(np.int32)
    cells, cols = np.sort(rng.choice(40, 25, replace=False)), np.arange(0, 30, 2)
    got = export._subset32(counts, cells, cols)
    want = counts[cells][:, cols].astype(np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert (got != want).nnz == 0
    # every row and column: nothing is copied but the values, as float32
    whole = export._subset32(counts, np.arange(40), np.arange(30))
    assert whole.dtype == np.float32 and np.shares_memory(whole.indices, counts.indices)
    assert (whole != counts.astype(np.float32)).nnz == 0
    assert export._subset32(whole, np.arange(40), np.arange(30)) is whole
