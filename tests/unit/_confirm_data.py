"""Small simulators for the confirmatory and composition tests and the calibration bench.

:func:`stromal_counts` draws cells of mouse stromal types (and optionally one planted gene
change in one type) for a few animals per arm; :func:`drug_composition` draws per-animal
cell-type labels where a drug halves the tumour cells and leaves the stroma alone.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

REF, TEST = "control", "drug"
STROMA = {"CAF": 0.35, "TAM": 0.35, "NK": 0.15, "B": 0.15}


def stromal_counts(
    *,
    n_genes: int = 1000,
    animals_per_arm: int = 3,
    cells_per_animal: int = 300,
    fold: float = 1.0,
    gene: str = "G0000",
    cell_type: str = "CAF",
    gene_mean: float = 0.3,
    animal_cv: float = 0.25,
    seed: int = 0,
) -> AnnData:
    """Counts of mouse stromal cells (``STROMA`` fractions, Dirichlet per animal) + tumour.

    Every gene is null except ``gene`` in ``cell_type``, whose mean is ``gene_mean`` per cell
    in the reference and ``fold`` times that in the test arm. Genes have gamma-distributed
    means, an animal effect (gamma, coefficient of variation ``animal_cv``) and negative
    binomial (size 5) cell noise. Human tumour cells are a third of each animal's cells and
    carry the human gene ``HG0``.
    """
    rng = np.random.default_rng(seed)
    genes = [f"G{i:04d}" for i in range(n_genes)]
    base = rng.gamma(1.0, 0.4, size=n_genes)
    types = list(STROMA)
    blocks, obs = [], []
    shape = 1 / animal_cv**2
    for arm in (REF, TEST):
        for a in range(animals_per_arm):
            sample = f"{arm}_{a}"
            animal = rng.gamma(shape, 1 / shape, size=n_genes)
            frac = rng.dirichlet(200 * np.array(list(STROMA.values())))
            n_by_type = rng.multinomial(cells_per_animal, frac)
            for t, n in zip(types, n_by_type, strict=True):
                mu = base * animal * rng.gamma(4.0, 0.25, size=n_genes) ** (t == "TAM")
                if t == cell_type:
                    mu[genes.index(gene)] = (
                        gene_mean * animal[genes.index(gene)] * (fold if arm == TEST else 1.0)
                    )
                blocks.append(rng.negative_binomial(5, 5 / (5 + mu[None, :]), size=(n, n_genes)))
                obs += [(sample, arm, t, "mouse")] * int(n)
            n_tumor = cells_per_animal // 2
            blocks.append(
                rng.negative_binomial(5, 5 / (5 + base[None, :]), size=(n_tumor, n_genes))
            )
            obs += [(sample, arm, "tumor", "human")] * n_tumor
    counts = sp.csr_matrix(np.vstack(blocks).astype(np.int32))
    obs_df = pd.DataFrame(obs, columns=["sample", "condition", "cell_type", "species"])
    obs_df.index = [f"c{i}" for i in range(len(obs_df))]
    obs_df["cell_subtype"] = obs_df["cell_type"]
    var = pd.DataFrame({"species": "mouse"}, index=genes)
    adata = AnnData(X=counts.astype(np.float32), obs=obs_df, var=var)
    adata.layers["counts"] = counts
    return adata


def drug_composition(
    *, animals_per_arm: int = 4, stroma_cells: int = 600, tumor_cells: int = 900, seed: int = 0
) -> AnnData:
    """Cell labels only: the drug halves the tumour cells; stromal cells are unchanged.

    Each animal has ``stroma_cells`` mouse cells split by Dirichlet(300 x ``STROMA``) in both
    arms, and ``tumor_cells`` human tumour cells in the reference arm, half as many treated.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for arm in (REF, TEST):
        for a in range(animals_per_arm):
            frac = rng.dirichlet(300 * np.array(list(STROMA.values())))
            for t, n in zip(STROMA, rng.multinomial(stroma_cells, frac), strict=True):
                rows += [(f"{arm}_{a}", arm, t, "mouse")] * int(n)
            n_tumor = tumor_cells if arm == REF else tumor_cells // 2
            rows += [(f"{arm}_{a}", arm, "tumor", "human")] * int(rng.poisson(n_tumor))
    obs = pd.DataFrame(rows, columns=["sample", "condition", "cell_type", "species"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    obs["cell_subtype"] = obs["cell_type"]
    return AnnData(obs=obs)
