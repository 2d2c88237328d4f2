"""Snakemake adapter: per-sample proportions, a replicate-aware composition test, and the
propeller test among the stroma, the immune cells and each split type's subtypes.

The logic lives in tmeflow.stats.
"""

from tmeflow import core, stats


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    adata = core.read_h5ad(smk.input[0], skip=("X", "layers", "obsp"))
    adata = stats.select_arms(adata, p.condition_key, p.reference, p.test)
    props = stats.proportions(adata, group_key="cell_type", condition_key=p.condition_key)
    test = stats.compare_proportions(
        props, reference=p.reference, test=p.test, method=p.method, alpha=p.alpha
    )
    by_denominator = stats.compare_denominators(
        stats.denominator_proportions(
            adata, condition_key=p.condition_key, immune_types=p.immune_types
        ),
        reference=p.reference,
        test=p.test,
        alpha=p.alpha,
    )
    log.info("composition test:\n%s", test.to_string())
    log.info("by denominator (propeller):\n%s", by_denominator.to_string())
    core.write_tsv(props, smk.output.proportions)
    core.write_tsv(test, smk.output.test)
    core.write_tsv(by_denominator, smk.output.denominators)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
