"""Snakemake adapter: every cell removed before annotation, labelled by its nearest kept cells
and tabulated by sample, arm and label; the logic lives in tmeflow.cells."""

import anndata as ad
import pandas as pd

from tmeflow import cells, core


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    p = smk.params
    kept = core.read_h5ad(smk.input.annotated, skip=("X", "obsm", "obsp", "uns"), layers=["counts"])
    qc_cells = pd.concat([pd.read_csv(f, sep="\t", index_col="cell") for f in smk.input.cells])
    removed_obs = cells.removed_obs(qc_cells, kept.obs_names)
    parts = []
    for f in smk.input.species:  # one sample at a time: only its removed droplets are held
        a = core.read_h5ad(f, skip=("uns",))
        parts.append(a[a.obs_names.isin(removed_obs.index)].copy())
    removed = ad.concat(parts, join="inner")
    labels = cells.label_removed(kept, removed, label_key="cell_type", k=p.k, seed=p.seed)
    per_cell = removed_obs.join(labels)  # a removed cell the species h5ad lacks: unassigned
    per_cell["label"] = per_cell["label"].fillna(cells.UNASSIGNED)
    kept_obs = pd.DataFrame({"sample": kept.obs["sample"], "label": kept.obs["cell_type"]})
    table = cells.removed_table(per_cell, kept_obs, dict(p.conditions))
    flags = cells.removed_flags(per_cell, kept_obs, dict(p.conditions))
    log.info(
        "%d removed cells labelled; %d label(s) flagged", len(per_cell), flags["flagged"].sum()
    )
    core.write_tsv(per_cell, smk.output.cells, index=True, index_label="cell")
    core.write_tsv(table, smk.output.table)
    core.write_tsv(flags, smk.output.flags)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
