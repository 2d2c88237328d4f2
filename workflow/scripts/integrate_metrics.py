"""Snakemake adapter: scib metrics and condition signal, scVI vs PCA; logic in tmeflow.embed."""

from pathlib import Path

from tmeflow import core, embed
from tmeflow.plots import atlas


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    embed.set_threads(smk.threads)
    p = smk.params
    adata = core.read_h5ad(smk.input[0], skip=("layers", "obsp"))
    table, condition = embed.integration_metrics(
        adata, batch_key=p.batch_key, label_key=p.label_key, condition_key=p.condition_key,
        n_comps=p.n_comps, seed=p.seed, min_cells=p.min_cells, min_samples=p.min_samples,
        min_signal=p.min_signal, min_retained=p.min_retained, kbet=p.kbet,
        max_cells=p.max_cells,
    )  # fmt: skip
    log.info("integration metrics:\n%s", table.to_string(index=False))
    core.write_tsv(table, smk.output.metrics)
    core.write_tsv(condition, smk.output.condition)
    stem = Path(smk.output.figure[0]).with_suffix("")
    atlas.integration_metrics_plot(table, condition, stem=stem)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
