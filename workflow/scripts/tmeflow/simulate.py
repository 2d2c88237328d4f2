"""Deterministic simulator of a human-cell-line xenograft single-cell experiment in nude mice.

The simulator is the demo data and the test oracle of the workflow. It writes real 10x input
files (Cell Ranger 3 HDF5 and v3 matrix-market folders, alternating per sample) plus a
ground-truth table (``truth.tsv``) and the documented planted effects (``planted.yaml``).

Planted biology (second condition versus the first, the reference):

- composition: the TAM fraction doubles (0.15 -> 0.30) and the tumour fraction falls
  (0.45 -> 0.30);
- differential expression: ``Mmp11`` in CAFs, log2 fold change 2;
- pathway: the simulated members of ``HALLMARK_INTERFERON_ALPHA_RESPONSE`` in TAMs, log2 fold
  change 1.5;
- nothing else differs between conditions; ``null_genes`` documents ~300 expressed mouse genes
  with no effect of any kind (no cell-type programme, no batch shift).

Gene symbols in ``planted.yaml`` are written without species prefixes (``Mmp11``), as they are
after the species stage; the 10x files carry prefixed names (``mm10_Mmp11``, ``GRCh38_AXL``).
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml
from anndata import AnnData

__all__ = [
    "CONDITIONS_DEFAULT",
    "SimulatedExperiment",
    "demo_layout",
    "demo_outputs",
    "read_gmt_genes",
    "simulate_experiment",
    "write_demo",
]

CONDITIONS_DEFAULT: tuple[str, str] = ("control", "alectinib")

HUMAN_PREFIX = "GRCh38_"
MOUSE_PREFIX = "mm10_"
HUMAN_GENOME = "GRCh38"
MOUSE_GENOME = "mm10"
FEATURE_TYPE = "Gene Expression"

# --- genes -------------------------------------------------------------------------------------
HUMAN_TUMOR_MARKERS: dict[str, float] = {  # natural-log effect over base in the tumour
    "AXL": 4.0,
    "KRT8": 4.0,
    "KRT18": 4.0,
    "KRT19": 3.5,
    "EPCAM": 3.5,
    "CDH1": 3.0,
    "ALK": 2.5,
    "EML4": 2.5,
    "EGFR": 2.0,
    "MKI67": 2.0,
    "TOP2A": 2.0,
    "GAPDH": 3.5,
    "ACTB": 3.5,
}
HUMAN_MITO = (
    "MT-ND1",
    "MT-ND2",
    "MT-CO1",
    "MT-CO2",
    "MT-ATP8",
    "MT-ATP6",
    "MT-CO3",
    "MT-ND3",
    "MT-ND4L",
    "MT-ND4",
    "MT-ND5",
    "MT-ND6",
    "MT-CYB",
)
MOUSE_MITO = (
    "mt-Nd1",
    "mt-Nd2",
    "mt-Co1",
    "mt-Co2",
    "mt-Atp8",
    "mt-Atp6",
    "mt-Co3",
    "mt-Nd3",
    "mt-Nd4l",
    "mt-Nd4",
    "mt-Nd5",
    "mt-Nd6",
    "mt-Cytb",
)
#: Well-known mouse members of MSigDB HALLMARK_INTERFERON_ALPHA_RESPONSE (mouse ortholog set).
IFN_ALPHA_GENES = (
    "Isg15",
    "Ifit3",
    "Irf7",
    "Mx1",
    "Rsad2",
    "Ifi44",
    "Bst2",
    "Stat2",
    "Irf9",
    "Usp18",
    "Ifitm3",
    "Isg20",
    "Ly6e",
    "Parp9",
    "Cmpk2",
    "Ifi35",
    "Psmb8",
    "Psmb9",
    "Oas1a",
    "Rtp4",
)
PATHWAY_NAME = "HALLMARK_INTERFERON_ALPHA_RESPONSE"
#: T-cell markers: present in the reference, (almost) never expressed (nude mice have no T cells).
T_CELL_MARKERS = ("Cd3e", "Cd3d", "Cd3g", "Cd4", "Cd8a", "Cd8b1", "Trac", "Cd28")

CAF_SHARED = ("Col1a1", "Col1a2", "Dcn", "Pdgfra", "Pdgfrb")
TAM_SHARED = ("C1qa", "C1qb", "C1qc", "Adgre1", "Cd68", "Lyz2", "Csf1r", "Ptprc")

#: Mouse cell types: shared markers of the type (gene -> natural-log effect over base).
MOUSE_TYPE_MARKERS: dict[str, dict[str, float]] = {
    "CAF": dict.fromkeys(CAF_SHARED, 3.5),
    "TAM": dict.fromkeys(TAM_SHARED, 3.5),
    "monocyte": {"Ly6c2": 3.5, "Ccr2": 3.5, "Plac8": 3.5, "Ptprc": 3.5, "Lyz2": 2.0},
    "neutrophil": {"S100a8": 4.0, "S100a9": 4.0, "Retnlg": 3.5, "Csf3r": 3.5, "Ptprc": 3.0},
    "NK": {"Ncr1": 3.5, "Nkg7": 4.0, "Klrb1c": 3.5, "Gzma": 4.0, "Ptprc": 3.5},
    "B": {"Cd79a": 4.0, "Cd79b": 3.5, "Ms4a1": 3.5, "Cd19": 3.5, "Ptprc": 3.5},
    "endothelial": {"Pecam1": 3.5, "Cdh5": 3.5, "Kdr": 3.5, "Emcn": 3.5},
    "pericyte": {"Rgs5": 4.0, "Kcnj8": 3.5, "Abcc9": 3.5, "Pdgfrb": 3.5},
}
#: Subtype markers (on top of the type's profile).
SUBTYPE_MARKERS: dict[str, dict[str, float]] = {
    "myCAF": {"Acta2": 4.0, "Tagln": 4.0, "Myl9": 3.5},
    "iCAF": {"Ly6c1": 3.5, "Cxcl12": 3.5, "Pi16": 3.5, "Il6": 3.0},
    "TAM_Mrc1": {"Mrc1": 3.5, "Lyve1": 3.5, "F13a1": 3.5},
    "TAM_Spp1": {"Arg1": 3.5, "Spp1": 4.0},
}

#: Populations (cell_subtype) in a fixed order: (subtype, cell_type, species).
POPULATIONS: tuple[tuple[str, str, str], ...] = (
    ("tumor", "tumor", "human"),
    ("myCAF", "CAF", "mouse"),
    ("iCAF", "CAF", "mouse"),
    ("TAM_Mrc1", "TAM", "mouse"),
    ("TAM_Spp1", "TAM", "mouse"),
    ("monocyte", "monocyte", "mouse"),
    ("neutrophil", "neutrophil", "mouse"),
    ("NK", "NK", "mouse"),
    ("B", "B", "mouse"),
    ("endothelial", "endothelial", "mouse"),
    ("pericyte", "pericyte", "mouse"),
)
CELL_TYPES = (
    "tumor",
    "CAF",
    "TAM",
    "monocyte",
    "neutrophil",
    "NK",
    "B",
    "endothelial",
    "pericyte",
)
COMPOSITION_REFERENCE: dict[str, float] = {
    "tumor": 0.45,
    "CAF": 0.15,
    "TAM": 0.15,
    "monocyte": 0.06,
    "neutrophil": 0.06,
    "NK": 0.04,
    "B": 0.03,
    "endothelial": 0.04,
    "pericyte": 0.02,
}
COMPOSITION_TEST: dict[str, float] = {**COMPOSITION_REFERENCE, "tumor": 0.30, "TAM": 0.30}
SUBTYPE_SPLIT: dict[str, dict[str, float]] = {
    "CAF": {"myCAF": 0.6, "iCAF": 0.4},
    "TAM": {"TAM_Mrc1": 0.5, "TAM_Spp1": 0.5},
}
#: Median library size per cell type (UMIs).
LIBRARY_MEDIAN: dict[str, float] = {
    "tumor": 8000.0,
    "CAF": 5000.0,
    "TAM": 4000.0,
    "monocyte": 3000.0,
    "neutrophil": 1500.0,
    "NK": 2500.0,
    "B": 2500.0,
    "endothelial": 4000.0,
    "pericyte": 4000.0,
}
#: Fixed fractions of a population's non-mito counts for a few genes: gene -> {subtype: fraction}.
#: Populations not listed get the ``"*"`` value (mouse populations only).
FIXED_FRACTIONS: dict[str, dict[str, float]] = {
    "Gas6": {
        "myCAF": 4e-3,
        "iCAF": 4e-3,
        "TAM_Mrc1": 3e-3,
        "TAM_Spp1": 3e-4,
        "*": 1e-5,
    },
    "Mmp11": {"myCAF": 3e-4, "iCAF": 3e-4, "*": 2e-5},
    "Axl": {
        "myCAF": 1.2e-4,
        "iCAF": 1.2e-4,
        "TAM_Mrc1": 1.2e-4,
        "TAM_Spp1": 1.2e-4,
        "*": 1e-5,
    },
    **{gene: {"*": 1e-6} for gene in T_CELL_MARKERS},
}

DE_GENE = "Mmp11"
DE_CELL_TYPE = "CAF"
DE_LOG2FC = 2.0
PATHWAY_CELL_TYPE = "TAM"
PATHWAY_LOG2FC = 1.5
GAS6_SOURCES = ("CAF", "TAM_Mrc1")

# --- noise and artefact parameters ------------------------------------------------------------
DIRICHLET_CONCENTRATION = 300.0
LIBRARY_SD = 0.35
SAMPLE_SCALE_SD = 0.15
REPLICATE_NOISE_SD = 0.15
BATCH_GENE_FRACTION = 0.10
BATCH_SHIFT_SD = 0.5
DISPERSION_RANGE = (0.1, 0.3)
MITO_RANGE = (0.03, 0.06)
LOW_QUALITY_RATE = 0.04
LOW_QUALITY_LIBRARY_FACTOR = 0.15
LOW_QUALITY_MITO_RANGE = (0.30, 0.60)
DOUBLET_RATE = 0.04
MIXED_DOUBLET_SHARE = 1.0 / 3.0
AMBIENT_FRACTION = 0.02
TYPE_PROGRAM_SIZE = 40
SUBTYPE_PROGRAM_SIZE = 15
PROGRAM_LOG2_RANGE = (1.5, 3.0)
MARKER_BASE = 0.0  # natural-log base of marker genes (filler: Gamma(3, 0.5), median ~1.3)
N_NULL_GENES = 300
MIN_FILLER_MOUSE = 100
MIN_FILLER_HUMAN = 50
MIN_CELLS_PER_SAMPLE = 50
GZIP_LEVEL = 4  # level 9 takes ~3 s per default-size matrix for ~10% smaller files

TRUTH_COLUMNS = (
    "sample",
    "barcode",
    "condition",
    "species",
    "cell_type",
    "cell_subtype",
    "is_doublet",
    "is_low_quality",
)


@dataclass
class SimulatedExperiment:
    """A simulated experiment.

    Attributes
    ----------
    samples
        Sample name -> AnnData of raw counts (cells x genes, CSR int32, prefixed feature names,
        ``var`` columns ``gene_ids``, ``feature_types``, ``genome``), in layout order.
    truth
        One row per cell of every sample, columns ``sample``, ``barcode``, ``condition``,
        ``species``, ``cell_type``, ``cell_subtype``, ``is_doublet``, ``is_low_quality``.
    planted
        The documented effects and parameters (what ``planted.yaml`` holds).
    """

    samples: dict[str, AnnData]
    truth: pd.DataFrame
    planted: dict = field(default_factory=dict)


# --- layout ------------------------------------------------------------------------------------
def _check_conditions(conditions: Sequence[str]) -> tuple[str, str]:
    conds = tuple(conditions)
    if len(conds) != 2 or not all(isinstance(c, str) and c for c in conds):
        msg = f"conditions must be two non-empty strings (reference, test); got {conditions!r}"
        raise ValueError(msg)
    if conds[0] == conds[1]:
        msg = f"conditions must differ; got {conds[0]!r} twice"
        raise ValueError(msg)
    for c in conds:
        if any(ch in c for ch in "/\\\t\n ") or c.startswith("."):
            msg = f"condition {c!r} cannot be part of a file name; use letters, digits, '_' or '-'"
            raise ValueError(msg)
    return (conds[0], conds[1])


def _check_replicates(n_replicates: int) -> int:
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, int | np.integer):
        msg = f"n_replicates must be an integer; got {n_replicates!r}"
        raise TypeError(msg)
    if n_replicates < 1:
        msg = f"n_replicates must be at least 1; got {n_replicates}"
        raise ValueError(msg)
    return int(n_replicates)


def demo_layout(
    *, n_replicates: int = 3, conditions: tuple[str, str] = CONDITIONS_DEFAULT
) -> pd.DataFrame:
    """Sample sheet of the demo data.

    Parameters
    ----------
    n_replicates
        Samples per condition.
    conditions
        ``(reference, test)`` condition names.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample``, ``condition``, ``path``, ``format``; samples ordered
        ``{reference}_1..n`` then ``{test}_1..n``. Sample ``k`` (0-based) is written as 10x HDF5
        (``format="10x_h5"``, ``path=f"{sample}.h5"``) when ``k`` is even and as a 10x v3
        matrix-market folder (``format="10x_mtx"``, ``path=sample``) when odd. Paths are relative
        to the demo output directory.
    """
    n = _check_replicates(n_replicates)
    conds = _check_conditions(conditions)
    rows = []
    for cond in conds:
        for i in range(1, n + 1):
            sample = f"{cond}_{i}"
            k = len(rows)
            if k % 2 == 0:
                rows.append((sample, cond, f"{sample}.h5", "10x_h5"))
            else:
                rows.append((sample, cond, sample, "10x_mtx"))
    return pd.DataFrame(rows, columns=["sample", "condition", "path", "format"])


MTX_FILES = ("matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz")


def demo_outputs(
    *, n_replicates: int = 3, conditions: tuple[str, str] = CONDITIONS_DEFAULT
) -> list[str]:
    """Every file :func:`write_demo` creates, relative to the output directory.

    Parameters
    ----------
    n_replicates
        Samples per condition.
    conditions
        ``(reference, test)`` condition names.

    Returns
    -------
    list of str
        The ``.h5`` files, the three files of each mtx folder, ``truth.tsv`` and
        ``planted.yaml``.
    """
    layout = demo_layout(n_replicates=n_replicates, conditions=conditions)
    out: list[str] = []
    for path, fmt in zip(layout["path"], layout["format"], strict=True):
        if fmt == "10x_h5":
            out.append(path)
        else:
            out.extend(f"{path}/{name}" for name in MTX_FILES)
    out.extend(["truth.tsv", "planted.yaml"])
    return out


# --- gene sets -------------------------------------------------------------------------------
def read_gmt_genes(path: str | PathLike[str]) -> list[str]:
    """Unique gene symbols of a GMT file.

    Parameters
    ----------
    path
        A GMT file (``name<TAB>description<TAB>gene<TAB>gene...`` per line).

    Returns
    -------
    list of str
        The sorted unique symbols of all sets.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"GMT file {str(path)!r} not found; pass an existing MSigDB .gmt file"
        raise FileNotFoundError(msg)
    genes: set[str] = set()
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) == 1 and not fields[0].strip():
                continue
            if len(fields) < 3:
                msg = f"{path}:{lineno}: a GMT line needs name, description and genes (tabs)"
                raise ValueError(msg)
            genes.update(g.strip() for g in fields[2:] if g.strip())
    if not genes:
        msg = f"GMT file {str(path)!r} holds no genes"
        raise ValueError(msg)
    return sorted(genes)


# --- gene universe -----------------------------------------------------------------------------
@dataclass
class _Genes:
    human: list[str]
    mouse: list[str]
    human_filler: list[str]
    mouse_filler: list[str]

    @property
    def symbols(self) -> list[str]:
        return self.human + self.mouse

    @property
    def n_human(self) -> int:
        return len(self.human)


def _named_mouse_genes() -> list[str]:
    named: list[str] = []
    for markers in (*MOUSE_TYPE_MARKERS.values(), *SUBTYPE_MARKERS.values()):
        named.extend(markers)
    named.extend(["Gas6", "Mmp11", "Axl", *MOUSE_MITO, *IFN_ALPHA_GENES, *T_CELL_MARKERS])
    return list(dict.fromkeys(named))


def _named_human_genes() -> list[str]:
    return [*HUMAN_TUMOR_MARKERS, *HUMAN_MITO]


def _build_genes(
    rng: np.random.Generator,
    *,
    n_genes_mouse: int,
    n_genes_human: int,
    gene_pool: list[str] | None,
) -> _Genes:
    named_mouse = _named_mouse_genes()
    named_human = _named_human_genes()
    n_fill_mouse = n_genes_mouse - len(named_mouse)
    n_fill_human = n_genes_human - len(named_human)
    if n_fill_mouse < MIN_FILLER_MOUSE:
        msg = (
            f"n_genes_mouse={n_genes_mouse} is too small: need at least "
            f"{len(named_mouse) + MIN_FILLER_MOUSE} ({len(named_mouse)} named genes + "
            f"{MIN_FILLER_MOUSE} filler)"
        )
        raise ValueError(msg)
    if n_fill_human < MIN_FILLER_HUMAN:
        msg = (
            f"n_genes_human={n_genes_human} is too small: need at least "
            f"{len(named_human) + MIN_FILLER_HUMAN} ({len(named_human)} named genes + "
            f"{MIN_FILLER_HUMAN} filler)"
        )
        raise ValueError(msg)
    taken_upper = {g.upper() for g in named_mouse} | {g.upper() for g in named_human}
    pool: list[str] = []
    if gene_pool is not None:
        if isinstance(gene_pool, str):
            msg = "gene_pool must be a list of symbols, not a string; see read_gmt_genes()"
            raise TypeError(msg)
        seen: set[str] = set()
        for g in sorted({str(g).strip() for g in gene_pool}):
            up = g.upper()
            if not g or up in taken_upper or up in seen or up.startswith("MT-"):
                continue
            seen.add(up)
            pool.append(g)
        pool = [pool[i] for i in rng.permutation(len(pool))]
    mouse_filler = pool[:n_fill_mouse]
    human_filler = [g.upper() for g in pool[n_fill_mouse : n_fill_mouse + n_fill_human]]
    # synthetic symbols for the remainder (Gm-style; human ones are upper-cased "other" Gm genes)
    used_upper = taken_upper | {g.upper() for g in pool}
    counter = 10001

    def _next_synthetic() -> str:
        nonlocal counter
        while f"GM{counter}" in used_upper:
            counter += 1
        name = f"Gm{counter}"
        used_upper.add(name.upper())
        counter += 1
        return name

    while len(mouse_filler) < n_fill_mouse:
        mouse_filler.append(_next_synthetic())
    while len(human_filler) < n_fill_human:
        human_filler.append(_next_synthetic().upper())
    return _Genes(
        human=[*named_human, *human_filler],
        mouse=[*named_mouse, *mouse_filler],
        human_filler=human_filler,
        mouse_filler=mouse_filler,
    )


# --- expression model --------------------------------------------------------------------------
@dataclass
class _Model:
    genes: _Genes
    profiles: np.ndarray  # (n_pop, G) non-mito profiles, each sums to 1 over its species' genes
    mito: dict[str, np.ndarray]  # species -> (G,) profile over that species' mito genes
    dispersion: np.ndarray  # (G,)
    batch_genes: np.ndarray  # (G,) bool
    condition_factor: np.ndarray  # (n_pop, G) multiplier in the test condition
    null_genes: list[str]
    programs: dict[str, list[str]]


def _build_model(rng: np.random.Generator, genes: _Genes) -> _Model:
    symbols = genes.symbols
    n_g = len(symbols)
    n_h = genes.n_human
    # index by species: a human and a mouse symbol may coincide
    h_index = {g: i for i, g in enumerate(genes.human)}
    m_index = {g: n_h + i for i, g in enumerate(genes.mouse)}
    is_human = np.zeros(n_g, dtype=bool)
    is_human[:n_h] = True
    mito_h = np.array([h_index[g] for g in HUMAN_MITO])
    mito_m = np.array([m_index[g] for g in MOUSE_MITO])
    is_mito = np.zeros(n_g, dtype=bool)
    is_mito[mito_h] = True
    is_mito[mito_m] = True

    base = rng.gamma(3.0, 0.5, size=n_g)
    # markers get a low, nearly fixed base so that their specificity does not hang on a draw
    markers_all = {*(m for d in MOUSE_TYPE_MARKERS.values() for m in d)}
    markers_all |= {m for d in SUBTYPE_MARKERS.values() for m in d}
    marker_idx = np.array(
        [m_index[g] for g in sorted(markers_all)] + [h_index[g] for g in HUMAN_TUMOR_MARKERS]
    )
    base[marker_idx] = MARKER_BASE + rng.normal(0.0, 0.3, size=marker_idx.size)

    hf_idx = np.array([h_index[g] for g in genes.human_filler])
    mf_idx = np.array([m_index[g] for g in genes.mouse_filler])
    ln2 = np.log(2.0)

    def _program(pool: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        size = min(size, pool.size)
        idx = rng.choice(pool, size=size, replace=False)
        eff = rng.uniform(*PROGRAM_LOG2_RANGE, size=size) * ln2
        return idx, eff

    programs: dict[str, list[str]] = {}
    type_eta: dict[str, np.ndarray] = {}
    in_program = np.zeros(n_g, dtype=bool)
    for cell_type in CELL_TYPES:
        eta = base.copy()
        if cell_type == "tumor":
            for g, eff in HUMAN_TUMOR_MARKERS.items():
                eta[h_index[g]] += eff
            idx, eff = _program(hf_idx, TYPE_PROGRAM_SIZE)
        else:
            for g, eff in MOUSE_TYPE_MARKERS[cell_type].items():
                eta[m_index[g]] += eff
            if cell_type == "TAM":
                for g in IFN_ALPHA_GENES:
                    eta[m_index[g]] += 1.0
            idx, eff = _program(mf_idx, TYPE_PROGRAM_SIZE)
        eta[idx] += eff
        in_program[idx] = True
        programs[cell_type] = [symbols[i] for i in idx]
        type_eta[cell_type] = eta

    profiles = np.zeros((len(POPULATIONS), n_g))
    for p, (subtype, cell_type, species) in enumerate(POPULATIONS):
        eta = type_eta[cell_type].copy()
        if subtype in SUBTYPE_MARKERS:
            for g, eff in SUBTYPE_MARKERS[subtype].items():
                eta[m_index[g]] += eff
            idx, eff = _program(mf_idx, SUBTYPE_PROGRAM_SIZE)
            eta[idx] += eff
            in_program[idx] = True
            programs[subtype] = [symbols[i] for i in idx]
        own = (is_human if species == "human" else ~is_human) & ~is_mito
        w = np.where(own, np.exp(eta), 0.0)
        if species == "mouse":
            fixed = {
                m_index[g]: fr.get(subtype, fr.get(cell_type, fr["*"]))
                for g, fr in FIXED_FRACTIONS.items()
            }
            fixed_idx = np.fromiter(fixed, dtype=np.int64)
            fixed_val = np.fromiter(fixed.values(), dtype=float)
            w[fixed_idx] = 0.0
            w *= (1.0 - fixed_val.sum()) / w.sum()
            w[fixed_idx] = fixed_val
        else:
            w /= w.sum()
        profiles[p] = w

    mito = {}
    for species, idx in (("human", mito_h), ("mouse", mito_m)):
        v = np.zeros(n_g)
        v[idx] = rng.gamma(4.0, 1.0, size=idx.size)
        mito[species] = v / v.sum()

    dispersion = rng.uniform(*DISPERSION_RANGE, size=n_g)

    # genes with a per-sample batch shift: filler only (markers and planted genes stay clean)
    filler_all = np.concatenate([hf_idx, mf_idx])
    n_batch = round(BATCH_GENE_FRACTION * n_g)
    batch_idx = rng.choice(filler_all, size=min(n_batch, filler_all.size), replace=False)
    batch_genes = np.zeros(n_g, dtype=bool)
    batch_genes[batch_idx] = True

    # condition effects (test condition), applied to expected counts without renormalising
    condition_factor = np.ones((len(POPULATIONS), n_g))
    ifn_idx = np.array([m_index[g] for g in IFN_ALPHA_GENES])
    for p, (_subtype, cell_type, _species) in enumerate(POPULATIONS):
        if cell_type == DE_CELL_TYPE:
            condition_factor[p, m_index[DE_GENE]] = 2.0**DE_LOG2FC
        if cell_type == PATHWAY_CELL_TYPE:
            condition_factor[p, ifn_idx] = 2.0**PATHWAY_LOG2FC

    # null genes: expressed mouse filler with no programme and no batch shift
    candidates = np.array([i for i in mf_idx if not in_program[i] and not batch_genes[i]])
    if candidates.size:
        expressed = candidates[base[candidates] >= np.quantile(base[mf_idx], 0.4)]
        chosen = rng.choice(expressed, size=min(N_NULL_GENES, expressed.size), replace=False)
        null_genes = sorted(symbols[i] for i in chosen)
    else:
        null_genes = []

    return _Model(
        genes=genes,
        profiles=profiles,
        mito=mito,
        dispersion=dispersion,
        batch_genes=batch_genes,
        condition_factor=condition_factor,
        null_genes=null_genes,
        programs=programs,
    )


def _subtype_fractions(composition: dict[str, float]) -> np.ndarray:
    out = np.empty(len(POPULATIONS))
    for p, (subtype, cell_type, _species) in enumerate(POPULATIONS):
        split = SUBTYPE_SPLIT.get(cell_type, {subtype: 1.0})
        out[p] = composition[cell_type] * split[subtype]
    return out / out.sum()


def _barcodes(rng: np.random.Generator, n: int) -> np.ndarray:
    letters = np.array(list("ACGT"))
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        codes = rng.integers(0, 4, size=(n - len(out), 16))
        for row in letters[codes]:
            bc = "".join(row) + "-1"
            if bc not in seen:
                seen.add(bc)
                out.append(bc)
    return np.array(out, dtype=object)


def _simulate_sample(
    rng: np.random.Generator,
    model: _Model,
    *,
    sample: str,
    condition: str,
    is_test: bool,
    n_cells: int,
) -> tuple[AnnData, pd.DataFrame]:
    pops = POPULATIONS
    pop_species = np.array([s for _, _, s in pops])
    pop_type = np.array([t for _, t, _ in pops])
    lib_median = np.array([LIBRARY_MEDIAN[t] for t in pop_type])
    mouse_pops = np.flatnonzero(pop_species == "mouse")
    tumor_pop = int(np.flatnonzero(pop_type == "tumor")[0])

    expected = _subtype_fractions(COMPOSITION_TEST if is_test else COMPOSITION_REFERENCE)
    fractions = rng.dirichlet(DIRICHLET_CONCENTRATION * expected)

    n_dbl = int(rng.binomial(n_cells, DOUBLET_RATE))
    n_sing = n_cells - n_dbl
    first = np.repeat(np.arange(len(pops)), rng.multinomial(n_sing, fractions))
    second = np.full(n_sing, -1)
    low_q = rng.random(n_sing) < LOW_QUALITY_RATE

    mouse_frac = fractions[mouse_pops] / fractions[mouse_pops].sum()
    d_first = np.empty(n_dbl, dtype=np.int64)
    d_second = np.empty(n_dbl, dtype=np.int64)
    mixed = rng.random(n_dbl) < MIXED_DOUBLET_SHARE
    for j in range(n_dbl):
        if mixed[j]:
            m = int(rng.choice(mouse_pops, p=mouse_frac))
            pair = (tumor_pop, m) if rng.random() < 0.5 else (m, tumor_pop)
        else:
            a = int(rng.choice(mouse_pops, p=mouse_frac))
            others = mouse_pops[pop_type[mouse_pops] != pop_type[a]]
            p_other = fractions[others] / fractions[others].sum()
            b = int(rng.choice(others, p=p_other))
            pair = (a, b)
        d_first[j], d_second[j] = pair
    first = np.concatenate([first, d_first])
    second = np.concatenate([second, d_second])
    low_q = np.concatenate([low_q, np.zeros(n_dbl, dtype=bool)])
    is_dbl = second >= 0
    order = rng.permutation(n_cells)
    first, second, low_q, is_dbl = first[order], second[order], low_q[order], is_dbl[order]

    sample_scale = np.exp(rng.normal(0.0, SAMPLE_SCALE_SD))

    def _component(pop_idx: np.ndarray, lowq: np.ndarray) -> np.ndarray:
        lib = lib_median[pop_idx] * sample_scale * np.exp(rng.normal(0, LIBRARY_SD, pop_idx.size))
        lib = np.where(lowq, lib * LOW_QUALITY_LIBRARY_FACTOR, lib)
        mt = np.where(
            lowq,
            rng.uniform(*LOW_QUALITY_MITO_RANGE, pop_idx.size),
            rng.uniform(*MITO_RANGE, pop_idx.size),
        )
        profiles = model.profiles
        if is_test:
            profiles = profiles * model.condition_factor
        mu = profiles[pop_idx] * ((1.0 - mt) * lib)[:, None]
        for species in ("human", "mouse"):
            sel = pop_species[pop_idx] == species
            mu[sel] += (mt[sel] * lib[sel])[:, None] * model.mito[species][None, :]
        return mu

    mu = _component(first, low_q)
    if is_dbl.any():
        dbl = np.flatnonzero(is_dbl)
        mu[dbl] += _component(second[dbl], np.zeros(dbl.size, dtype=bool))

    # per-sample gene-level variation, independent of condition
    n_g = mu.shape[1]
    gene_factor = np.exp(rng.normal(0.0, REPLICATE_NOISE_SD, n_g))
    shift = rng.normal(0.0, BATCH_SHIFT_SD, n_g)
    gene_factor *= np.exp(np.where(model.batch_genes, shift, 0.0))
    mu *= gene_factor[None, :]

    # ambient RNA from the sample's average profile
    ambient = mu.sum(axis=0)
    ambient /= ambient.sum()
    totals = mu.sum(axis=1)
    mu *= 1.0 - AMBIENT_FRACTION
    mu += (AMBIENT_FRACTION * totals)[:, None] * ambient[None, :]

    # gamma-Poisson counts
    phi = model.dispersion
    lam = rng.gamma(np.broadcast_to(1.0 / phi, mu.shape), mu * phi[None, :])
    counts = rng.poisson(lam).astype(np.int32)

    barcodes = _barcodes(rng, n_cells)
    sort = np.argsort(barcodes, kind="stable")
    barcodes = barcodes[sort]
    counts = counts[sort]
    first, second, low_q, is_dbl = first[sort], second[sort], low_q[sort], is_dbl[sort]

    sp1 = pop_species[first]
    sp2 = np.where(is_dbl, pop_species[np.maximum(second, 0)], sp1)
    species = np.where(sp1 == sp2, sp1, "mixed")
    truth = pd.DataFrame(
        {
            "sample": sample,
            "barcode": barcodes.astype(str),
            "condition": condition,
            "species": species,
            "cell_type": pop_type[first],
            "cell_subtype": np.array([s for s, _, _ in pops])[first],
            "is_doublet": is_dbl,
            "is_low_quality": low_q,
        },
        columns=list(TRUTH_COLUMNS),
    )

    genes = model.genes
    var = pd.DataFrame(
        {
            "gene_ids": [HUMAN_PREFIX + f"ENSG{i:011d}" for i in range(1, genes.n_human + 1)]
            + [MOUSE_PREFIX + f"ENSMUSG{i:011d}" for i in range(1, len(genes.mouse) + 1)],
            "feature_types": FEATURE_TYPE,
            "genome": [HUMAN_GENOME] * genes.n_human + [MOUSE_GENOME] * len(genes.mouse),
        },
        index=pd.Index(
            [HUMAN_PREFIX + g for g in genes.human] + [MOUSE_PREFIX + g for g in genes.mouse]
        ),
    )
    x = sp.csr_matrix(counts)
    x.sort_indices()
    adata = AnnData(X=x, obs=pd.DataFrame(index=pd.Index(barcodes.astype(str))), var=var)
    return adata, truth


def _check_size(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{name} must be an integer; got {value!r}"
        raise TypeError(msg)
    if value < minimum:
        msg = f"{name} must be at least {minimum}; got {value}"
        raise ValueError(msg)
    return int(value)


def simulate_experiment(
    *,
    n_replicates: int = 3,
    cells_per_sample: int = 1500,
    conditions: tuple[str, str] = CONDITIONS_DEFAULT,
    n_genes_mouse: int = 2000,
    n_genes_human: int = 1000,
    gene_pool: list[str] | None = None,
    seed: int = 0,
) -> SimulatedExperiment:
    """Simulate a xenograft single-cell experiment with planted biology.

    Parameters
    ----------
    n_replicates
        Samples per condition (mice).
    cells_per_sample
        Cells per sample (doublets and low-quality cells included).
    conditions
        ``(reference, test)``; the planted effects are in ``test`` versus ``reference``.
    n_genes_mouse, n_genes_human
        Genes per genome, named marker, mito and pathway genes included.
    gene_pool
        Mouse symbols to draw filler genes from (e.g. :func:`read_gmt_genes` of the MSigDB mouse
        hallmark GMT); human filler are upper-cased other symbols of the pool. Synthetic
        ``Gm10001``-style symbols fill what the pool cannot.
    seed
        Seed of everything; the same seed gives identical matrices and files.

    Returns
    -------
    SimulatedExperiment
        ``samples`` (per-sample AnnData of raw counts, CSR int32; ``var_names`` prefixed
        ``GRCh38_``/``mm10_``; ``var``: ``gene_ids``, ``feature_types``, ``genome``), ``truth``
        (one row per cell) and ``planted`` (the documented effects, see the module docstring).
    """
    n_rep = _check_replicates(n_replicates)
    conds = _check_conditions(conditions)
    n_cells = _check_size("cells_per_sample", cells_per_sample, MIN_CELLS_PER_SAMPLE)
    n_gm = _check_size("n_genes_mouse", n_genes_mouse, 1)
    n_gh = _check_size("n_genes_human", n_genes_human, 1)
    seed = _check_size("seed", seed, 0)

    layout = demo_layout(n_replicates=n_rep, conditions=conds)
    seeds = np.random.SeedSequence(seed).spawn(1 + len(layout))
    rng = np.random.default_rng(seeds[0])
    genes = _build_genes(rng, n_genes_mouse=n_gm, n_genes_human=n_gh, gene_pool=gene_pool)
    model = _build_model(rng, genes)

    samples: dict[str, AnnData] = {}
    truths = []
    for k, (sample, condition) in enumerate(
        zip(layout["sample"], layout["condition"], strict=True)
    ):
        adata, truth = _simulate_sample(
            np.random.default_rng(seeds[1 + k]),
            model,
            sample=sample,
            condition=condition,
            is_test=condition == conds[1],
            n_cells=n_cells,
        )
        samples[sample] = adata
        truths.append(truth)
    truth = pd.concat(truths, ignore_index=True)

    planted = {
        "seed": seed,
        "conditions": list(conds),
        "sizes": {
            "n_replicates": n_rep,
            "cells_per_sample": n_cells,
            "n_genes_mouse": n_gm,
            "n_genes_human": n_gh,
        },
        "de": [{"gene": DE_GENE, "cell_type": DE_CELL_TYPE, "log2fc": DE_LOG2FC}],
        "pathway": {
            "name": PATHWAY_NAME,
            "cell_type": PATHWAY_CELL_TYPE,
            "log2fc": PATHWAY_LOG2FC,
            "genes": list(IFN_ALPHA_GENES),
        },
        "composition": {
            conds[0]: {t: float(v) for t, v in COMPOSITION_REFERENCE.items()},
            conds[1]: {t: float(v) for t, v in COMPOSITION_TEST.items()},
        },
        "subtype_split": {t: dict(v) for t, v in SUBTYPE_SPLIT.items()},
        "gas6_sources": list(GAS6_SOURCES),
        "null_genes": list(model.null_genes),
        "absent_markers": {"T": list(T_CELL_MARKERS)},
        "markers": {
            "tumor": list(HUMAN_TUMOR_MARKERS)[:6],
            **{t: list(m) for t, m in MOUSE_TYPE_MARKERS.items()},
            **{s: list(m) for s, m in SUBTYPE_MARKERS.items()},
        },
        "rates": {
            "doublet": DOUBLET_RATE,
            "mixed_doublet_share": round(MIXED_DOUBLET_SHARE, 4),
            "low_quality": LOW_QUALITY_RATE,
            "ambient_fraction": AMBIENT_FRACTION,
        },
    }
    return SimulatedExperiment(samples=samples, truth=truth, planted=planted)


# --- writers -----------------------------------------------------------------------------------
def _gzip_bytes(path: Path, payload: bytes) -> None:
    with (
        path.open("wb") as raw,
        gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=GZIP_LEVEL) as gz,
    ):
        gz.write(payload)


def _write_mtx(folder: Path, adata: AnnData) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    n_cells, n_genes = adata.shape
    # entries of the genes x cells matrix, cell by cell (column-major), genes ascending
    coo = sp.csr_matrix(adata.X).tocoo()
    order = np.lexsort((coo.col, coo.row))
    rows = coo.col[order] + 1  # gene (1-based)
    cols = coo.row[order] + 1  # cell (1-based)
    vals = coo.data[order]
    buf = io.StringIO()
    buf.write("%%MatrixMarket matrix coordinate integer general\n")
    buf.write(f"{n_genes} {n_cells} {vals.size}\n")
    pd.DataFrame({"r": rows, "c": cols, "v": vals}).to_csv(
        buf, sep=" ", header=False, index=False, lineterminator="\n"
    )
    _gzip_bytes(folder / "matrix.mtx.gz", buf.getvalue().encode("ascii"))
    features = "".join(
        f"{gid}\t{name}\t{ft}\n"
        for gid, name, ft in zip(
            adata.var["gene_ids"], adata.var_names, adata.var["feature_types"], strict=True
        )
    )
    _gzip_bytes(folder / "features.tsv.gz", features.encode("utf-8"))
    _gzip_bytes(folder / "barcodes.tsv.gz", "".join(f"{b}\n" for b in adata.obs_names).encode())


def _fixed_bytes(values: Sequence[str]) -> np.ndarray:
    encoded = [str(v).encode("utf-8") for v in values]
    width = max((len(v) for v in encoded), default=1)
    return np.array(encoded, dtype=f"S{max(width, 1)}")


def _write_h5(path: Path, adata: AnnData) -> None:
    csr = sp.csr_matrix(adata.X)  # cells x genes CSR == genes x cells CSC
    csr.sort_indices()
    n_cells, n_genes = csr.shape
    with h5py.File(path, "w", libver="earliest", track_order=False) as f:
        grp = f.create_group("matrix", track_order=False)
        kw = {"track_times": False}
        grp.create_dataset("barcodes", data=_fixed_bytes(adata.obs_names), **kw)
        grp.create_dataset(
            "data", data=csr.data.astype(np.int32), compression="gzip", shuffle=True, **kw
        )
        grp.create_dataset(
            "indices", data=csr.indices.astype(np.int64), compression="gzip", shuffle=True, **kw
        )
        grp.create_dataset("indptr", data=csr.indptr.astype(np.int64), **kw)
        grp.create_dataset("shape", data=np.array([n_genes, n_cells], dtype=np.int32), **kw)
        feat = grp.create_group("features", track_order=False)
        feat.create_dataset("_all_tag_keys", data=np.array([b"genome"], dtype="S6"), **kw)
        feat.create_dataset("feature_type", data=_fixed_bytes(adata.var["feature_types"]), **kw)
        feat.create_dataset("genome", data=_fixed_bytes(adata.var["genome"]), **kw)
        feat.create_dataset("id", data=_fixed_bytes(adata.var["gene_ids"]), **kw)
        feat.create_dataset("name", data=_fixed_bytes(adata.var_names), **kw)


def write_demo(outdir: str | PathLike[str], experiment: SimulatedExperiment) -> None:
    """Write the demo input files of an experiment.

    Writes one 10x input per sample as given by :func:`demo_layout` (HDF5 or mtx folder),
    ``truth.tsv`` (tab-separated, one row per cell) and ``planted.yaml`` into ``outdir``
    (created if needed); :func:`demo_outputs` lists the files. Output is byte-deterministic.

    Parameters
    ----------
    outdir
        Output directory.
    experiment
        The result of :func:`simulate_experiment`.
    """
    planted = experiment.planted
    try:
        n_rep = int(planted["sizes"]["n_replicates"])
        conds = tuple(planted["conditions"])
    except (KeyError, TypeError) as err:
        msg = "experiment.planted lacks sizes/conditions; build it with simulate_experiment()"
        raise ValueError(msg) from err
    layout = demo_layout(n_replicates=n_rep, conditions=(conds[0], conds[1]))
    missing = sorted(set(layout["sample"]) - set(experiment.samples))
    if missing:
        msg = f"experiment lacks samples {missing} of its layout; was it modified?"
        raise ValueError(msg)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for sample, path, fmt in zip(layout["sample"], layout["path"], layout["format"], strict=True):
        adata = experiment.samples[sample]
        if fmt == "10x_h5":
            _write_h5(out / path, adata)
        else:
            _write_mtx(out / path, adata)
    experiment.truth.to_csv(out / "truth.tsv", sep="\t", index=False, lineterminator="\n")
    with (out / "planted.yaml").open("w", encoding="utf-8") as handle:
        yaml.safe_dump(planted, handle, sort_keys=False, default_flow_style=None)
