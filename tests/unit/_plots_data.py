"""Small inputs of every figure, shared by the tests of tmeflow.plots."""

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def assert_written(paths: list[Path], stem: Path) -> None:
    """``paths`` are ``stem.pdf`` and ``stem.png``, each a PDF and a PNG."""
    assert paths == [stem.with_name(stem.name + ".pdf"), stem.with_name(stem.name + ".png")]
    pdf, png = paths
    assert pdf.read_bytes().startswith(b"%PDF")
    assert png.read_bytes().startswith(b"\x89PNG")


def adata(seed: int = 0, n: int = 120) -> ad.AnnData:
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


def pseudobulk(seed: int = 0) -> pd.DataFrame:
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


def props(seed: int = 0) -> pd.DataFrame:
    pb = pseudobulk(seed)
    pb = pb.loc[pb["gene"] == "AXL"].drop(columns=["gene", "counts"])
    pb["fraction"] = pb["cpm"] / pb.groupby("sample")["cpm"].transform("sum")
    return pb.drop(columns="cpm")


def source_table(shift: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "cell_type": ["tumor", "CAF", "TAM", "tumor", "CAF", "TAM"],
            "condition": ["vehicle"] * 3 + ["drug"] * 3,
            "share": [0.5 + shift, 0.3, 0.2 - shift, 0.2, 0.6, 0.2],
            "share_sd": [0.05, np.nan, 0.02, 0.04, 0.1, 0.03],
        }
    )


def de_table(seed: int = 0) -> pd.DataFrame:
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


def gsea_table(seed: int = 0) -> pd.DataFrame:
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
