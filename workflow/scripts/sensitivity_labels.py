"""Snakemake adapter: the cells' labels under each annotation setting of the sensitivity table;
logic in tmeflow.stats."""

from tmeflow import core, stats


def main(smk) -> None:
    core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    # X's marker columns for the scores, the graph and embedding; not the counts
    adata = core.read_h5ad(smk.input.h5ad, skip=("X",), layers=())
    markers = core.load_panels([smk.input.panel, *smk.input.extra_panels])
    labels = stats.label_settings(
        adata,
        markers,
        **{k: getattr(p, k) for k in stats.LABEL_PARAMS},
        annotate_options=p.annotate_options,
        x=lambda: stats.marker_x(smk.input.h5ad, adata, markers),
    )
    labels.write(smk.output.labels, smk.output.settings)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
