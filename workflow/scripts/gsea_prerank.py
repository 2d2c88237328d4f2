"""Snakemake adapter: offline preranked GSEA per cell type; the logic lives in tmeflow.stats."""

from pathlib import Path

from tmeflow import core, stats


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    panel = smk.input.panel if p.marker_sets else None
    sets, collection = stats.load_gene_sets(list(smk.input.gmts), panel)
    log.info("%d gene sets from %s", len(sets), sorted(set(collection.values())))
    results = stats.prerank_files(
        Path(smk.input.de).glob("*.tsv"),
        sets,
        collection=collection,
        permutations=p.permutations,
        min_size=p.min_size,
        max_size=p.max_size,
        seed=p.seed,
        threads=smk.threads,
    )
    outdir = Path(smk.output.tables)
    outdir.mkdir(parents=True, exist_ok=True)
    for cell_type, res in results.items():
        core.write_tsv(res, outdir / f"{cell_type}.tsv")
    summary = stats.gsea_summary(results, fdr=p.fdr)
    if summary["de_method"].eq("wilcoxon_exploratory").any():
        log.warning("GSEA of exploratory DE (too few animals per arm): treat as hypotheses")
    core.write_tsv(summary, smk.output.summary)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
