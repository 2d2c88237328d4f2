"""Snakemake adapter: preranked GSEA of every cell type's pseudobulk statistic against the
gene sets shipped with the workflow (offline: gene sets are read from files and handed to
gseapy as a dict, never as a library name).

The logic lives in tmeflow.gsea.
"""

from pathlib import Path

import pandas as pd

from tmeflow import gsea, runtime, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    sets, collection = gsea.load_gene_sets(
        list(smk.input.gmts), smk.input.panel if p.marker_sets else None
    )
    log.info("%d gene sets from %s", len(sets), sorted(set(collection.values())))
    outdir = Path(smk.output.tables)
    outdir.mkdir(parents=True, exist_ok=True)
    results = {}
    for path in sorted(Path(smk.input.de).glob("*.tsv")):
        de_table = pd.read_csv(path, sep="\t")
        res = gsea.prerank(
            de_table,
            sets,
            cell_type=path.stem,
            collection=collection,
            permutations=p.permutations,
            min_size=p.min_size,
            max_size=p.max_size,
            seed=p.seed,
            threads=smk.threads,
        )
        results[path.stem] = res
        tables.write_tsv(res, outdir / f"{path.stem}.tsv")
        log.info("%s: %d sets tested, %s", path.stem, len(res), res.attrs.get("note", ""))
    summary = gsea.gsea_summary(results, fdr=p.fdr)
    if summary["de_method"].eq("wilcoxon_exploratory").any():
        log.warning(
            "GSEA of exploratory DE (too few animals per arm): rankings ignore "
            "animal-to-animal variation; treat enrichments as hypotheses"
        )
    tables.write_tsv(summary, smk.output.summary)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
