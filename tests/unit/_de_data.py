"""Xenograft-like synthetic counts shared by the DE, pseudobulk, GOI and DE-levels tests.

The fixtures ``de_data`` and ``de_tables`` (tests/unit/conftest.py) serve these data.
"""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

REF, TEST = "ctrl", "alectinib"
HUMAN = ["AXL", "GAS6", "EGFR", *[f"HG{i:03d}" for i in range(97)]]
MOUSE = ["Axl", "Gas6", "Mmp11", *[f"Mg{i:03d}" for i in range(97)]]
MMP11_FOLD = 4.0  # planted: Mmp11 x4 in CAFs under alectinib -> log2FC = 2


def make_adata(*, samples_per_arm: int = 3, cells_per_sample: int = 150, seed: int = 0) -> AnnData:
    """Xenograft-like counts: human tumour cells, mouse CAFs and TAMs, animal-level noise.

    Mmp11 is 4x higher in CAFs of treated animals; every other gene is null. AXL (human,
    tumour) and Axl (mouse, stroma) have different expression so a case-insensitive match
    would be caught.
    """
    rng = np.random.default_rng(seed)
    genes = HUMAN + MOUSE
    is_human = np.array([g in HUMAN for g in genes])
    base = rng.gamma(2.0, 0.3, size=len(genes))
    types = np.array(["tumor", "CAF", "TAM"])
    blocks, obs = [], []
    for arm in (REF, TEST):
        for s in range(samples_per_arm):
            sample = f"{arm}_{s}"
            animal = rng.gamma(25.0, 1 / 25.0, size=len(genes))  # CV 0.2 between animals
            p = [0.6, 0.25, 0.15] if arm == REF else [0.45, 0.25, 0.30]
            cell_types = rng.choice(types, size=cells_per_sample, p=p)
            for t in types:
                n = int((cell_types == t).sum())
                mu = np.where(is_human == (t == "tumor"), base * animal, 0.0)
                if t == "tumor":
                    mu[genes.index("AXL")] = 2.0
                if t == "CAF":
                    mu[genes.index("Gas6")] = 3.0
                    mu[genes.index("Axl")] = 0.2
                    mu[genes.index("Mmp11")] = 0.8 * (MMP11_FOLD if arm == TEST else 1.0)
                x = rng.negative_binomial(5, 5 / (5 + mu[None, :]), size=(n, len(genes)))
                blocks.append(x)
                obs += [
                    {
                        "sample": sample,
                        "condition": arm,
                        "cell_type": t,
                        "cell_subtype": f"{t}_1",
                        "species": "human" if t == "tumor" else "mouse",
                        "batch": f"b{s % 2}",
                        "total_counts": 0.0,  # cell-level, not sample-level
                    }
                ] * n
    counts = sp.csr_matrix(np.vstack(blocks).astype(np.int32))
    obs_df = pd.DataFrame(obs, index=[f"cell{i}" for i in range(len(obs))])
    obs_df["total_counts"] = np.asarray(counts.sum(axis=1)).ravel().astype(float)
    for col in ("sample", "condition", "cell_type", "cell_subtype", "species"):
        obs_df[col] = obs_df[col].astype("category")
    var = pd.DataFrame({"species": np.where(is_human, "human", "mouse")}, index=genes)
    adata = AnnData(X=counts.astype(np.float32), obs=obs_df, var=var)
    adata.layers["counts"] = counts
    return adata


def with_subtypes(adata: AnnData) -> AnnData:
    """CAFs split into myCAF / iCAF (alternating cells), a few TAMs unassigned."""
    out = adata.copy()
    sub = out.obs["cell_type"].astype(str).to_numpy().copy()
    caf = np.flatnonzero(sub == "CAF")
    sub[caf[::2]], sub[caf[1::2]] = "myCAF", "iCAF"
    tam = np.flatnonzero(sub == "TAM")
    sub[tam[:5]] = "TAM_unassigned"
    out.obs["cell_subtype"] = pd.Categorical(sub)
    return out
