"""Snakemake adapter: the confirmatory family under other cheap choices; logic in
tmeflow.stats."""

from tmeflow import core, stats


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    # X is read for the annotation settings only, the ambient layer for its own setting
    adata = core.read_h5ad(smk.input.h5ad, skip=("X",), layers=("counts",))
    markers = core.load_panels([smk.input.panel, *smk.input.extra_panels])
    table = stats.sensitivity(
        adata,
        stats.parse_hypotheses(p.hypotheses),
        markers,
        **{k: getattr(p, k) for k in stats.TRIED_PARAMS},
        min_fraction=p.min_fraction,
        doublets=p.doublets,
        ambient_layer=lambda: core.read_layer(smk.input.h5ad, stats.AMBIENT_LAYER),
        x=lambda: stats.marker_x(smk.input.h5ad, adata, markers),
        annotate_options=p.annotate_options,
        confirm_options={**p.confirm_options, "threads": smk.threads},
    )
    log.info("sensitivity grid:\n%s", stats.verdict_grid(table).to_string())
    core.write_tsv(table, smk.output.table)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
