"""Snakemake adapter: CELLxGENE-schema h5ad per species; logic in tmeflow.export."""

from functools import partial
from pathlib import Path

import numpy as np

from tmeflow import core, export


def main(smk) -> None:
    log = core.setup(smk.log[0], threads=smk.threads)
    # the matrices are read per species, only its rows and columns (core.read_rows)
    adata = core.read_h5ad(smk.input.h5ad, skip=("X", "layers", "obsp"))
    read = partial(core.read_rows, smk.input.h5ad, dtype=np.float32)
    for path in smk.output:
        species = Path(path).stem
        out = export.to_cellxgene(adata, species, smk.params.settings, read=read)
        for problem in export.problems(out):
            log.warning("%s: %s", path, problem)
        log.info("%s: %d cells, %d features", path, out.n_obs, out.n_vars)
        core.write_h5ad(out, path)
        del out  # not held while the next species' object is built


if __name__ == "__main__":
    main(snakemake)  # noqa: F821
