"""Snakemake adapter: write the simulated xenograft demo; the logic lives in tmeflow.simulate."""

from pathlib import Path

from tmeflow import core, simulate


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    pool = simulate.read_gmt_genes(smk.input.gene_pool)
    # Marker genes are simulated explicitly; keep them out of the random filler programs.
    panel_genes = set()
    for entry in core.load_panel(smk.input.panel)["cell_types"].values():
        panel_genes.update(entry["markers"])
        for sub in (entry.get("subtypes") or {}).values():
            panel_genes.update(sub["markers"])
    pool = [g for g in pool if g not in panel_genes]
    experiment = simulate.simulate_experiment(
        n_replicates=smk.params.n_replicates,
        cells_per_sample=smk.params.cells_per_sample,
        conditions=tuple(smk.params.conditions),
        n_genes_mouse=smk.params.n_genes_mouse,
        n_genes_human=smk.params.n_genes_human,
        gene_pool=pool,
        seed=smk.params.seed,
    )
    outdir = Path(next(f for f in smk.output if Path(f).name == "truth.tsv")).parent
    simulate.write_demo(outdir, experiment)
    log.info("demo written to %s: %d cells", outdir, len(experiment.truth))


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
