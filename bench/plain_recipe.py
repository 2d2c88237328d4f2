"""The plain recipe a user would write instead of tmeflow (the yardstick of bench/recipe.py).

scanpy QC (fixed thresholds), Scrublet per sample, log-normalisation, seurat_v3 HVGs per
sample, scVI with scvi-tools' default epochs, neighbours, Leiden, UMAP and Wilcoxon markers,
written to one h5ad. Not part of the workflow: it is what the workflow is timed against.

    python bench/plain_recipe.py SAMPLE_SHEET OUT.h5ad --threads 2
"""

import argparse
import sys
import time
from pathlib import Path

import anndata as ad
import pandas as pd
import scanpy as sc


def read_sample(path: Path) -> ad.AnnData:
    """A 10x HDF5 file, a 10x mtx folder or an h5ad, as scanpy reads them."""
    if path.is_dir():
        return sc.read_10x_mtx(path)
    if path.suffix == ".h5ad":
        return sc.read_h5ad(path)
    return sc.read_10x_h5(path)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sheet", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import scvi
    import torch

    torch.set_num_threads(args.threads)
    sc.settings.n_jobs = args.threads
    scvi.settings.seed = args.seed
    start = time.monotonic()
    sheet = pd.read_csv(args.sheet, sep="\t", comment="#")
    root = args.sheet.resolve().parent.parent  # sheet paths are relative to the repository
    adatas = {}
    for row in sheet.itertuples():
        path = Path(row.path) if Path(row.path).is_absolute() else root / row.path
        a = read_sample(path)
        a.var_names_make_unique()
        a.var["mt"] = a.var_names.str.contains(r"(?:^|_)(?:mt-|MT-)", regex=True)
        sc.pp.calculate_qc_metrics(a, qc_vars=["mt"], inplace=True, percent_top=None)
        a = a[(a.obs["n_genes_by_counts"] >= 200) & (a.obs["pct_counts_mt"] < 20)].copy()
        sc.pp.scrublet(a, threshold=0.25, random_state=args.seed)  # no skimage: fixed
        adatas[row.sample] = a[~a.obs["predicted_doublet"].to_numpy()].copy()
    adata = ad.concat(adatas, label="sample", index_unique="-")
    sc.pp.filter_genes(adata, min_cells=3)
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(
        adata, n_top_genes=2000, flavor="seurat_v3", layer="counts", batch_key="sample"
    )
    hvg = adata[:, adata.var["highly_variable"].to_numpy()].copy()
    scvi.model.SCVI.setup_anndata(hvg, layer="counts", batch_key="sample")
    model = scvi.model.SCVI(hvg)
    t_scvi = time.monotonic()
    model.train(accelerator="cpu", enable_progress_bar=False)  # scvi-tools' default epochs
    epochs = len(model.history["elbo_train"])
    scvi_s = time.monotonic() - t_scvi
    adata.obsm["X_scVI"] = model.get_latent_representation()
    sc.pp.neighbors(adata, use_rep="X_scVI", random_state=args.seed)
    sc.tl.leiden(adata, flavor="igraph", n_iterations=2, random_state=args.seed)
    sc.tl.umap(adata, random_state=args.seed)
    sc.tl.rank_genes_groups(adata, "leiden", method="wilcoxon")
    adata.write_h5ad(args.out)
    print(
        f"plain recipe: {adata.n_obs} cells, {epochs} scVI epochs in {scvi_s:.1f} s "
        f"({scvi_s / epochs:.3f} s/epoch), total {time.monotonic() - start:.1f} s",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
