"""Snakemake adapter: the confirmatory family under other cheap choices; logic in
tmeflow.sensitivity."""

from tmeflow import confirmatory, h5ad, panel, runtime, sensitivity, tables


def main(smk) -> None:
    log = runtime.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    # X is read for the annotation settings only, the ambient layer for its own setting
    adata = h5ad.read_h5ad(smk.input.h5ad, skip=("X",), layers=("counts",))
    markers = panel.load_panels([smk.input.panel, *smk.input.extra_panels])
    table = sensitivity.sensitivity(
        adata,
        confirmatory.parse_hypotheses(p.hypotheses),
        markers,
        resolutions=p.resolutions,
        min_scores=p.min_scores,
        min_margins=p.min_margins,
        min_fractions=p.min_fractions,
        min_fraction=p.min_fraction,
        doublets=p.doublets,
        ambient_layer=lambda: h5ad.read_layer(smk.input.h5ad, sensitivity.AMBIENT_LAYER),
        x=lambda: sensitivity.marker_x(smk.input.h5ad, adata, markers),
        annotate_options=p.annotate_options,
        confirm_options={**p.confirm_options, "threads": smk.threads},
    )
    log.info("sensitivity grid:\n%s", sensitivity.verdict_grid(table).to_string())
    tables.write_tsv(table, smk.output.table)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
