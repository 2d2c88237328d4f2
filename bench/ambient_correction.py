"""The demo's answers with and without the ambient correction (library functions, no workflow).

Simulates the small demo (tests/workflow/helpers.py SMALL_DEMO: 3 + 3 animals, 700 cells per sample;
its droplets already hold 2% soup from the sample's pooled profile), optionally adds
``--extra-soup`` more (each droplet: that fraction of its UMIs drawn from the sample's pooled
counts), calls species with the count test, keeps the true singlets that pass the species call,
merges, and writes ``layers["counts_ambient_corrected"]`` (tmeflow.cells._ambient). Cell types are
the simulated truth (no clustering). Then, on the raw and on the corrected counts:

- the share of mouse Gas6 in tumour (human) cells and the top Gas6 source per condition
  (tmeflow.stats._expression_sources; the uncorrected table also gives its ambient-corrected share);
- Mmp11 in CAF: pseudobulk log2 fold change and padj (tmeflow.stats._de_tables, cell types only);
- the TAM fraction per condition (cell counts: the same with and without the correction).

    nice -n 10 .venv/bin/python bench/ambient_correction.py [--extra-soup 0.05]
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

from tmeflow import simulate  # noqa: E402
from tmeflow.cells import _ambient as ambient  # noqa: E402
from tmeflow.cells import _species as species  # noqa: E402
from tmeflow.embed import _integrate as integrate  # noqa: E402
from tmeflow.stats import _de as de  # noqa: E402
from tmeflow.stats import _de_tables as de_levels  # noqa: E402
from tmeflow.stats import _expression_sources as sources  # noqa: E402

GMT = REPO / "config" / "genesets" / "mh.all.v2023.1.Mm.symbols.gmt"


def _samples(extra_soup: float, seed: int) -> tuple[list, pd.DataFrame]:
    exp = simulate.simulate_experiment(
        n_replicates=3,
        cells_per_sample=700,
        conditions=("control", "alectinib"),
        n_genes_mouse=1500,
        n_genes_human=600,
        gene_pool=simulate.read_gmt_genes(GMT),
        seed=seed,
    )
    rng = np.random.default_rng(seed)
    truth = exp.truth.set_index(["sample", "barcode"])
    out = []
    for name, a in exp.samples.items():
        a = a.copy()
        counts = sp.csr_matrix(a.X).astype(np.int64)
        if extra_soup > 0:
            pooled = np.asarray(counts.sum(axis=0), dtype=np.float64).ravel()
            pooled /= pooled.sum()
            tot = np.asarray(counts.sum(axis=1)).ravel()
            soup = np.vstack([rng.multinomial(round(extra_soup * t), pooled) for t in tot])
            counts = counts + sp.csr_matrix(soup)
        a.X = counts.astype(np.int32)
        t = truth.loc[name].reindex(a.obs_names)
        a.obs = pd.DataFrame(
            {
                "sample": name,
                "condition": t["condition"].to_numpy(),
                "cell_type": t["cell_type"].to_numpy(),
                "cell_subtype": t["cell_subtype"].to_numpy(),
                "true_doublet": t["is_doublet"].to_numpy(bool) | t["is_low_quality"].to_numpy(bool),
            },
            index=[f"{name}_{b}" for b in a.obs_names],
        )
        species.assign_species(a, mode="xenograft", min_fraction=0.8, crossspecies_fdr=0.01)
        keep = a.obs["species"].isin(["human", "mouse"]).to_numpy() & ~a.obs["true_doublet"]
        out.append(a[keep.to_numpy()].copy())
    return out, exp.truth


def _answers(adata, layer: str) -> dict:
    row: dict = {"layer": layer}
    t = sources.expression_sources(adata, "Gas6", layer=layer)
    for cond, sub in t.groupby("condition"):
        sub = sub.set_index("cell_type")
        row[f"gas6_tumor_share_{cond}"] = float(sub.loc["tumor", "share"])
        row[f"gas6_tumor_share_corrected_{cond}"] = float(sub.loc["tumor", "share_corrected"])
        row[f"gas6_top_{cond}"] = str(sub["share"].idxmax())
        row[f"gas6_caf_tam_share_{cond}"] = float(sub.loc[["CAF", "TAM"], "share"].sum())
    prim = sources.primary_sources(t, min_share=0.1, corrected=True)
    row["gas6_primary_corrected"] = ",".join(sorted(set(prim["cell_type"])))
    settings = de.DESettings(
        condition_key="condition", reference="control", test="alectinib", layer=layer
    )
    res = de_levels.run_levels(adata, settings, genes=["Gas6", "Mmp11"], subtypes=False)
    caf = res.by_type["CAF"].set_index("gene").loc["Mmp11"]
    row["mmp11_caf_log2fc"] = float(caf["log2FoldChange"])
    row["mmp11_caf_padj"] = float(caf["padj"])
    frac = adata.obs.groupby("sample", observed=True).apply(
        lambda o: pd.Series(
            {"condition": o["condition"].iat[0], "tam": (o["cell_type"] == "TAM").mean()}
        )
    )
    tam = frac.groupby("condition")["tam"].mean()
    row["tam_fraction_control"] = float(tam["control"])
    row["tam_fraction_alectinib"] = float(tam["alectinib"])
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--extra-soup", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    per_sample, _truth = _samples(args.extra_soup, args.seed)
    merged = integrate.concat_samples(per_sample)
    soup = ambient.add_corrected_layer(merged)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(soup.round(4).to_string())
        rows = [_answers(merged, "counts"), _answers(merged, ambient.CORRECTED_LAYER)]
        print(pd.DataFrame(rows).set_index("layer").T.to_string())


if __name__ == "__main__":
    main()
