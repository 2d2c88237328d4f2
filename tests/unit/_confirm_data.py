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


#: Stromal (mouse) cell types of :func:`tumour_experiment`, expected fractions of the stroma:
#: from 35% (CAF) down to a rare 2% (pericyte).
TUMOUR_STROMA = {
    "CAF": 0.35,
    "TAM": 0.22,
    "endothelial": 0.12,
    "T": 0.10,
    "neutrophil": 0.08,
    "NK": 0.06,
    "B": 0.05,
    "pericyte": 0.02,
}
#: TAM subtypes, expected fractions of the TAMs (TAM_Arg1 a rare 10%).
TAM_SUBTYPES = {"TAM_Mrc1": 0.55, "TAM_Spp1": 0.35, "TAM_Arg1": 0.10}
#: Named genes of :func:`tumour_experiment` (the others are ``G0003``, ...).
CHANGE_GENE, SOURCE_GENE, MAIN_GENE = "Mmp11", "Postn", "Gas6"
#: ``Gas6``'s main sources in :func:`tumour_experiment`: half of its stromal UMIs (the null).
MAIN_GROUPS = ("CAF", "TAM_Mrc1")


def tumour_experiment(
    *,
    animals_per_arm: int = 3,
    stroma_cells: int = 800,
    tumor_cells: int = 400,
    n_genes: int = 150,
    change_fold: float = 1.0,
    tam_fold: float = 1.0,
    source_fold: float = 1.0,
    within_fold: float = 1.0,
    concentration: float = 100.0,
    within_concentration: float = 60.0,
    animal_cv: float = 0.25,
    counts: bool = True,
    seed: int = 0,
) -> AnnData:
    """A xenograft-like experiment: 8 stromal types (35% to 2%), TAM subtypes, tumour cells.

    Per animal, ``stroma_cells`` mouse cells (Poisson) are split by
    Dirichlet(``concentration`` x :data:`TUMOUR_STROMA`) and the TAMs into
    :data:`TAM_SUBTYPES` by Dirichlet(``within_concentration`` x fractions); the test arm's
    expected TAM fraction is ``tam_fold`` times the reference's (the other types share the
    rest in their proportions) and TAM_Mrc1's share of the TAMs ``within_fold`` times.
    ``tumor_cells`` human tumour cells carry human genes only. Mouse genes: gamma means, a
    per-type profile, an animal effect (gamma, CV ``animal_cv``) and negative binomial (size
    5) cell noise; ``Mmp11`` is a CAF gene whose CAF mean is ``change_fold`` times higher in
    the test arm; ``Postn`` is made in proportion to each cell's expected library
    (no enriched source) except in CAFs, where its rate is ``source_fold`` times that;
    ``Gas6``'s stromal UMIs come half from :data:`MAIN_GROUPS` in every animal (an
    animal-level jitter either way): the boundary of the ``main_sources`` null.
    ``counts=False`` returns the labels only (no matrix), for composition-only tests.
    """
    rng = np.random.default_rng(seed)
    types = list(TUMOUR_STROMA)
    genes = [CHANGE_GENE, SOURCE_GENE, MAIN_GENE] + [f"G{i:04d}" for i in range(3, n_genes)]
    base = rng.gamma(1.0, 2.0, size=n_genes)
    profile = {t: rng.gamma(4.0, 0.25, size=n_genes) for t in [*types, *TAM_SUBTYPES]}
    for t in profile:
        profile[t][0] = 0.05 / base[0]  # Mmp11: low outside CAFs
    profile["CAF"][0] = 1.0 / base[0]  # ~1 UMI per CAF
    human = [f"HG{i}" for i in range(5)]
    h_base = rng.gamma(2.0, 2.0, size=len(human))
    frac0 = np.array(list(TUMOUR_STROMA.values()))
    sub0 = np.array(list(TAM_SUBTYPES.values()))
    shape = 1 / animal_cv**2
    blocks, obs = [], []
    for arm in (REF, TEST):
        frac, sub = frac0.copy(), sub0.copy()
        if arm == TEST:
            frac[1] *= tam_fold
            frac[[i for i in range(len(frac)) if i != 1]] *= (1 - frac[1]) / (1 - frac0[1])
            sub[0] *= within_fold
            sub[1:] *= (1 - sub[0]) / (1 - sub0[0])
        for a in range(animals_per_arm):
            sample = f"{arm}_{a}"
            animal = rng.gamma(shape, 1 / shape, size=n_genes)
            n_type = rng.multinomial(rng.poisson(stroma_cells), rng.dirichlet(concentration * frac))
            n_sub = rng.multinomial(n_type[1], rng.dirichlet(within_concentration * sub))
            groups = [(t, t, n) for t, n in zip(types, n_type, strict=True) if t != "TAM"]
            groups += [("TAM", s, n) for s, n in zip(TAM_SUBTYPES, n_sub, strict=True)]
            n_main = sum(n for t, s, n in groups if t in MAIN_GROUPS or s in MAIN_GROUPS)
            n_rest = sum(n for _, _, n in groups) - n_main
            jitter = np.exp(rng.normal(0.0, 0.2))
            for t, s, n in groups:
                obs += [(sample, arm, t, s, "mouse")] * int(n)
                if not counts or n == 0:
                    continue
                mu = base * animal * profile[s]
                if t == "CAF" and arm == TEST:
                    mu[0] *= change_fold
                main = t in MAIN_GROUPS or s in MAIN_GROUPS
                # Gas6: equal expected UMIs in the main groups and the rest of the stroma
                mu[2] = (0.25 * stroma_cells / max(n_main if main else n_rest, 1) * animal[2]) * (
                    jitter if main else 1 / jitter
                )
                # Postn: 0.3% of every cell's expected UMIs (CAF: source_fold times that)
                mu[1] = 0.003 / 0.997 * (mu.sum() - mu[1]) * (source_fold if t == "CAF" else 1.0)
                cells = rng.negative_binomial(5, 5 / (5 + mu[None, :]), size=(n, n_genes))
                blocks.append(np.hstack([cells, np.zeros((n, len(human)), cells.dtype)]))
            n_tum = int(rng.poisson(tumor_cells))
            obs += [(sample, arm, "tumor", "tumor", "human")] * n_tum
            if counts:
                h = rng.negative_binomial(5, 5 / (5 + h_base[None, :]), size=(n_tum, len(human)))
                blocks.append(np.hstack([np.zeros((n_tum, n_genes), h.dtype), h]))
    obs_df = pd.DataFrame(
        obs, columns=["sample", "condition", "cell_type", "cell_subtype", "species"]
    )
    obs_df.index = [f"c{i}" for i in range(len(obs_df))]
    if not counts:
        return AnnData(obs=obs_df)
    mat = sp.csr_matrix(np.vstack(blocks).astype(np.int32))
    var = pd.DataFrame({"species": ["mouse"] * n_genes + ["human"] * len(human)})
    var.index = genes + human
    adata = AnnData(X=mat.astype(np.float32), obs=obs_df, var=var)
    adata.layers["counts"] = mat.astype(np.int32)
    return adata
