"""Snakemake adapter: the confirmatory family under other choices, on the labels of
sensitivity_labels; logic in tmeflow.stats."""

from tmeflow import core, stats


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    # the counts; the ambient layer and the removed cells are read for their settings only
    adata = core.read_h5ad(smk.input.h5ad, skip=("X", "obsp"), layers=("counts",))
    table = stats.sensitivity(
        adata,
        stats.parse_hypotheses(p.hypotheses),
        None,
        labels=stats.LabelSettings.read(
            smk.input.labels,
            smk.input.settings,
            retrain=list(zip(smk.input.retrain, smk.input.retrain_notes, strict=True)),
        ),
        min_fractions=p.min_fractions,
        de_min_cells=p.de_min_cells,
        de_methods=p.de_methods,
        subtypes=p.subtypes,
        min_fraction=p.min_fraction,
        doublets=p.doublets,
        ambient_layer=lambda: core.read_layer(smk.input.h5ad, stats.AMBIENT_LAYER),
        removed=lambda: core.read_h5ad(smk.input.removed),
        annotate_options={"species_mode": p.species_mode},
        confirm_options={**p.confirm_options, "threads": smk.threads},
    )
    log.info("sensitivity grid:\n%s", stats.verdict_grid(table).to_string())
    core.write_tsv(table, smk.output.table)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
