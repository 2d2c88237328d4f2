"""Unit tests for tmeflow.cells._species: prefixes, per-cell species calls, stripping,
contamination."""

import gzip
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

from tmeflow.cells import _species as species
from tmeflow.core import _h5ad as h5ad
from tmeflow.inputs import _ingest as ingest


def _adata(X: np.ndarray, names: list[str], **var_cols: list[str]) -> ad.AnnData:
    var = pd.DataFrame(index=names)
    for k, v in var_cols.items():
        var[k] = v
    obs = pd.DataFrame({"sample": "s1"}, index=[f"c{i}" for i in range(X.shape[0])])
    return ad.AnnData(sp.csr_matrix(np.asarray(X, dtype=np.float32)), obs=obs, var=var)


def test_detect_prefixes() -> None:
    names = ["GRCh38_AXL", "GRCh38-GAS6", "mm10_Axl", "hg19_ACTB", "Xist", "GRCm39_Col1a1"]
    found = species.detect_prefixes(names)
    assert found == {"human": ["GRCh38-", "GRCh38_", "hg19_"], "mouse": ["GRCm39_", "mm10_"]}
    assert species.detect_prefixes(["Axl", "Gas6"]) == {"human": [], "mouse": []}


def test_split_and_genome_species() -> None:
    assert species.split_prefix("GRCh38_MT-ND1") == ("GRCh38_", "human", "MT-ND1")
    assert species.split_prefix("mm10-mt-Co1") == ("mm10-", "mouse", "mt-Co1")
    assert species.split_prefix("Axl") == ("", None, "Axl")
    assert species.genome_species("hg19") == "human"
    assert species.genome_species("GRCm39") == "mouse"
    assert species.genome_species("zsGreen") is None


def test_xenograft_calls_on_synthetic_mixture() -> None:
    # features: 2 human, 2 mouse; cells with human fractions 0.9, 0.1, 0.5, 0.8, 0.2, 0/0
    names = ["GRCh38_AXL", "GRCh38_GAS6", "mm10_Axl", "mm10_Gas6"]
    X = np.array(
        [
            [50, 40, 5, 5],  # 0.9 -> human
            [5, 5, 60, 30],  # 0.1 -> mouse
            [25, 25, 25, 25],  # 0.5 -> mixed
            [40, 40, 10, 10],  # 0.8 -> human (>= min_fraction)
            [10, 10, 40, 40],  # 0.2 -> mouse (<= 1 - min_fraction)
            [0, 0, 0, 0],  # no counts -> mixed, NaN fraction
        ]
    )
    a = species.assign_species(_adata(X, names), mode="xenograft", min_fraction=0.8)
    assert a.obs["n_counts_human"].tolist() == [90, 10, 50, 80, 20, 0]
    assert a.obs["n_counts_mouse"].tolist() == [10, 90, 50, 20, 80, 0]
    np.testing.assert_allclose(a.obs["human_fraction"].to_numpy()[:5], [0.9, 0.1, 0.5, 0.8, 0.2])
    assert np.isnan(a.obs["human_fraction"].iat[5])
    assert a.obs["species"].astype(str).tolist() == [
        "human",
        "mouse",
        "mixed",
        "human",
        "mouse",
        "mixed",
    ]
    # a stricter threshold turns the 0.8 / 0.2 cells into mixed
    b = species.assign_species(_adata(X, names), mode="xenograft", min_fraction=0.85)
    assert b.obs["species"].astype(str).tolist()[3:5] == ["mixed", "mixed"]
    assert a.uns["species"]["mode"] == "xenograft"
    assert a.uns["species"]["min_fraction"] == 0.8
    assert a.uns["species"]["prefixes"] == {"human": ["GRCh38_"], "mouse": ["mm10_"]}
    assert a.uns["species"]["n_cells"] == {"human": 2, "mouse": 2, "mixed": 2}


def test_prefix_stripping_with_collision(tmp_path: Path) -> None:
    names = ["GRCh38_AXL", "mm10_Axl", "GRCh38_DHRSX", "mm10_DHRSX", "GRCh38_MT-ND1", "zsGreen"]
    X = np.arange(1, 13).reshape(2, 6)
    a = species.assign_species(_adata(X, names), mode="xenograft")
    assert list(a.var_names) == ["AXL", "Axl", "GRCh38_DHRSX", "mm10_DHRSX", "MT-ND1", "zsGreen"]
    assert list(a.var["feature_name"]) == names
    assert a.var["species"].astype(str).tolist() == [
        "human",
        "mouse",
        "human",
        "mouse",
        "human",
        "unknown",
    ]
    # the transgene counts for neither species
    assert a.obs["n_counts_human"].tolist() == [1 + 3 + 5, 7 + 9 + 11]
    assert a.obs["n_counts_mouse"].tolist() == [2 + 4, 8 + 10]
    assert a.uns["species"]["n_features_kept_prefixed"] == 2
    h5ad.write_h5ad(a, tmp_path / "sp.h5ad")  # uns and var must be writable
    back = h5ad.read_h5ad(tmp_path / "sp.h5ad")
    assert list(back.var_names) == list(a.var_names)
    assert list(back.uns["species"]["prefixes"]["human"]) == ["GRCh38_"]


def test_xenograft_without_prefixes_says_what_to_do() -> None:
    a = _adata(np.ones((2, 3)), ["Axl", "Gas6", "Col1a1"])
    with pytest.raises(ValueError, match=r"species: mouse.*species: human|check the reference"):
        species.assign_species(a, mode="xenograft")
    b = _adata(np.ones((2, 2)), ["mm10_Axl", "mm10_Gas6"])
    with pytest.raises(ValueError, match="no human features"):
        species.assign_species(b, mode="xenograft")
    with pytest.raises(ValueError, match="unknown"):
        species.assign_species(b, mode="rat")
    with pytest.raises(ValueError, match="min_fraction"):
        species.assign_species(b, mode="xenograft", min_fraction=0.4)


def test_single_species_mode_strips_and_labels() -> None:
    X = np.array([[1, 2, 3], [0, 4, 0]])
    a = species.assign_species(_adata(X, ["mm10_Axl", "mm10_Gas6", "Xist"]), mode="mouse")
    assert list(a.var_names) == ["Axl", "Gas6", "Xist"]
    assert set(a.var["species"]) == {"mouse"}
    assert set(a.obs["species"].astype(str)) == {"mouse"}
    assert a.obs["n_counts_mouse"].tolist() == [6, 4]
    assert a.obs["n_counts_human"].tolist() == [0, 0]
    assert a.obs["human_fraction"].tolist() == [0.0, 0.0]
    h = species.assign_species(_adata(X, ["AXL", "GAS6", "XIST"]), mode="human")
    assert list(h.var_names) == ["AXL", "GAS6", "XIST"]
    assert h.obs["human_fraction"].tolist() == [1.0, 1.0]
    assert h.uns["species"]["mode"] == "human"


def test_species_from_prefixed_ids_when_names_unprefixed(tmp_path: Path) -> None:
    """Real mixed references: ids carry hg19_/mm10_, symbols repeat across genomes."""
    d = tmp_path / "hgmm"
    d.mkdir()
    feats = [
        ("hg19_ENSG01", "ACTB"),
        ("hg19_ENSG02", "MT-ND1"),
        ("hg19_ENSG03", "DHRSX"),
        ("mm10_ENSMUSG01", "Actb"),
        ("mm10_ENSMUSG02", "mt-Nd1"),
        ("mm10_ENSMUSG03", "DHRSX"),
    ]
    X = np.array([[30, 5, 2, 1, 0, 0], [0, 1, 0, 20, 6, 3], [10, 0, 0, 10, 0, 0]])
    scipy.io.mmwrite(str(d / "matrix.mtx"), sp.coo_matrix(X.T), field="integer")
    with gzip.open(d / "features.tsv.gz", "wt") as fh:
        fh.writelines(f"{i}\t{n}\tGene Expression\n" for i, n in feats)
    (d / "barcodes.tsv").write_text("AAAC-1\nAAAG-1\nAAAT-1\n")
    a = ingest.ingest_sample(d, sample="x1", condition="ctrl")
    assert list(a.var_names) == ["ACTB", "MT-ND1", "DHRSX", "Actb", "mt-Nd1", "DHRSX-1"]
    species.assign_species(a, mode="xenograft")
    assert a.uns["species"]["source"] == "gene_ids"
    assert list(a.var_names) == ["ACTB", "MT-ND1", "hg19_DHRSX", "Actb", "mt-Nd1", "mm10_DHRSX"]
    assert a.var["species"].astype(str).tolist() == ["human"] * 3 + ["mouse"] * 3
    assert a.obs["species"].astype(str).tolist() == ["human", "mouse", "mixed"]
    assert a.obs["n_counts_human"].tolist() == [37, 1, 10]


def test_species_from_genome_column() -> None:
    X = np.array([[9, 1], [1, 9]])
    a = _adata(X, ["ACTB", "Actb"], gene_ids=["ENSG1", "ENSMUSG1"], genome=["GRCh38", "mm10"])
    species.assign_species(a, mode="xenograft")
    assert a.uns["species"]["source"] == "genome"
    assert a.obs["species"].astype(str).tolist() == ["human", "mouse"]
    assert list(a.var_names) == ["ACTB", "Actb"]


def test_contamination() -> None:
    names = ["GRCh38_A", "mm10_B"]
    X = np.array([[95, 5], [99, 1], [97, 3], [2, 98], [4, 96], [50, 50]])
    a = species.assign_species(_adata(X, names), mode="xenograft")
    c = species.contamination(a)
    assert c["n_human"] == 3 and c["n_mouse"] == 2 and c["n_mixed"] == 1
    assert c["mouse_in_human_median"] == pytest.approx(0.03)
    assert c["mouse_in_human_mean"] == pytest.approx(0.03)
    assert c["human_in_mouse_median"] == pytest.approx(0.03)
    with pytest.raises(ValueError, match="run assign_species"):
        species.contamination(_adata(X, names))


def test_species_report_composition_prefixes_contamination() -> None:
    names = ["GRCh38_AXL", "GRCh38_GAS6", "mm10_Axl", "mm10_Gas6"]
    X = np.array([[95, 0, 5, 0], [90, 0, 0, 10], [0, 2, 98, 0], [50, 0, 50, 0]])
    a = species.assign_species(_adata(X, names), mode="xenograft", min_fraction=0.8)
    row = species.species_report(a, mode="xenograft")
    assert (row["n_human"], row["n_mouse"], row["n_mixed"]) == (2, 1, 1)
    assert (row["pct_human"], row["pct_mouse"], row["pct_mixed"]) == (50.0, 25.0, 25.0)
    assert row["prefixes"] == "human:GRCh38_;mouse:mm10_"
    assert row["contamination_mouse_in_human_median"] == pytest.approx(0.075)
    assert row["contamination_human_in_mouse_median"] == pytest.approx(0.02)
    assert "contamination_n_human" not in row
    # the soup's source per species (few UMIs here: the pooled cells; with a low threshold the
    # other species' cells, whose UMIs of that species are all ambient)
    assert (row["soup_source_human"], row["soup_source_mouse"]) == ("pooled_cells",) * 2
    low = species.species_report(a, mode="xenograft", min_soup_umis=1)
    assert low["soup_source_human"] == "other_species_cells"
    # prefixes stripped after assignment, the species kept in var
    assert list(a.var_names) == ["AXL", "GAS6", "Axl", "Gas6"]
    assert a.var["species"].astype(str).tolist() == ["human", "human", "mouse", "mouse"]
    b = species.assign_species(_adata(X, ["A", "B", "C", "D"]), mode="mouse")
    row_b = species.species_report(b, mode="mouse")
    assert row_b["prefixes"] == "" and row_b["pct_mouse"] == 100.0
    assert not any(k.startswith("contamination_") for k in row_b)
