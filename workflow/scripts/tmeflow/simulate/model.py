"""The generative model of the simulated xenograft: expression profiles, cells, counts.

Per population (:data:`~tmeflow.simulate.truth.POPULATIONS`) a non-mito expression profile is
built from a Gamma base, the planted markers, random gene programmes and a few fixed fractions
(:func:`_build_model`). Per sample (:func:`_simulate_sample`): Dirichlet-perturbed composition,
doublets (a third of them human-mouse), low-quality cells (small libraries, high mito), a
per-sample gene-level variation and batch shift, ambient RNA from the sample's average profile,
then gamma-Poisson counts and 10x-like barcodes. Every draw comes from one seed
(:func:`simulate_experiment`): the model and each sample have their own spawned generator.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow.simulate.genes import _build_genes, _Genes
from tmeflow.simulate.layout import _check_conditions, _check_replicates, demo_layout
from tmeflow.simulate.truth import (
    CELL_TYPES,
    COMPOSITION_REFERENCE,
    COMPOSITION_TEST,
    CONDITIONS_DEFAULT,
    DE_CELL_TYPE,
    DE_GENE,
    DE_LOG2FC,
    FEATURE_TYPE,
    FIXED_FRACTIONS,
    HUMAN_GENOME,
    HUMAN_MITO,
    HUMAN_PREFIX,
    HUMAN_TUMOR_MARKERS,
    IFN_ALPHA_GENES,
    LIBRARY_MEDIAN,
    LR_RISING,
    LR_RISING_SUBTYPES,
    MOUSE_GENOME,
    MOUSE_MITO,
    MOUSE_PREFIX,
    MOUSE_TYPE_MARKERS,
    PATHWAY_CELL_TYPE,
    PATHWAY_LOG2FC,
    POPULATIONS,
    SUBTYPE_MARKERS,
    SUBTYPE_SPLIT,
    TRUTH_COLUMNS,
    planted_effects,
)

__all__ = ["SimulatedExperiment", "simulate_experiment"]

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
MIN_CELLS_PER_SAMPLE = 50

_POP_SUBTYPE = np.array([s for s, _, _ in POPULATIONS])
_POP_TYPE = np.array([t for _, t, _ in POPULATIONS])
_POP_SPECIES = np.array([s for _, _, s in POPULATIONS])


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


@dataclass
class _Index:
    """Positions of the genes on the gene axis (human genes first, then mouse genes)."""

    symbols: list[str]
    human: dict[str, int]  # by species: a human and a mouse symbol may coincide
    mouse: dict[str, int]
    is_human: np.ndarray  # (G,) bool
    is_mito: np.ndarray  # (G,) bool
    mito_h: np.ndarray
    mito_m: np.ndarray
    human_filler: np.ndarray
    mouse_filler: np.ndarray

    @property
    def n_g(self) -> int:
        return len(self.symbols)


def _index(genes: _Genes) -> _Index:
    symbols = genes.symbols
    n_g = len(symbols)
    n_h = genes.n_human
    h_index = {g: i for i, g in enumerate(genes.human)}
    m_index = {g: n_h + i for i, g in enumerate(genes.mouse)}
    is_human = np.zeros(n_g, dtype=bool)
    is_human[:n_h] = True
    mito_h = np.array([h_index[g] for g in HUMAN_MITO])
    mito_m = np.array([m_index[g] for g in MOUSE_MITO])
    is_mito = np.zeros(n_g, dtype=bool)
    is_mito[mito_h] = True
    is_mito[mito_m] = True
    return _Index(
        symbols=symbols,
        human=h_index,
        mouse=m_index,
        is_human=is_human,
        is_mito=is_mito,
        mito_h=mito_h,
        mito_m=mito_m,
        human_filler=np.array([h_index[g] for g in genes.human_filler]),
        mouse_filler=np.array([m_index[g] for g in genes.mouse_filler]),
    )


def _base_expression(rng: np.random.Generator, ix: _Index) -> np.ndarray:
    base = rng.gamma(3.0, 0.5, size=ix.n_g)
    # markers get a low, nearly fixed base so that their specificity does not hang on a draw
    markers_all = {*(m for d in MOUSE_TYPE_MARKERS.values() for m in d)}
    markers_all |= {m for d in SUBTYPE_MARKERS.values() for m in d}
    marker_idx = np.array(
        [ix.mouse[g] for g in sorted(markers_all)] + [ix.human[g] for g in HUMAN_TUMOR_MARKERS]
    )
    base[marker_idx] = MARKER_BASE + rng.normal(0.0, 0.3, size=marker_idx.size)
    return base


def _program(rng: np.random.Generator, pool: np.ndarray, size: int) -> tuple[np.ndarray, ...]:
    size = min(size, pool.size)
    idx = rng.choice(pool, size=size, replace=False)
    eff = rng.uniform(*PROGRAM_LOG2_RANGE, size=size) * np.log(2.0)
    return idx, eff


def _type_expression(
    rng: np.random.Generator,
    ix: _Index,
    base: np.ndarray,
    programs: dict[str, list[str]],
    in_program: np.ndarray,
) -> dict[str, np.ndarray]:
    """Log-expression of each cell type; records its programme in ``programs``/``in_program``."""
    type_eta: dict[str, np.ndarray] = {}
    for cell_type in CELL_TYPES:
        eta = base.copy()
        if cell_type == "tumor":
            for g, eff in HUMAN_TUMOR_MARKERS.items():
                eta[ix.human[g]] += eff
            idx, eff = _program(rng, ix.human_filler, TYPE_PROGRAM_SIZE)
        else:
            for g, eff in MOUSE_TYPE_MARKERS[cell_type].items():
                eta[ix.mouse[g]] += eff
            if cell_type == "TAM":
                for g in IFN_ALPHA_GENES:
                    eta[ix.mouse[g]] += 1.0
            idx, eff = _program(rng, ix.mouse_filler, TYPE_PROGRAM_SIZE)
        eta[idx] += eff
        in_program[idx] = True
        programs[cell_type] = [ix.symbols[i] for i in idx]
        type_eta[cell_type] = eta
    return type_eta


def _population_profiles(
    rng: np.random.Generator,
    ix: _Index,
    type_eta: dict[str, np.ndarray],
    programs: dict[str, list[str]],
    in_program: np.ndarray,
) -> np.ndarray:
    """Non-mito profile of each population; subtype programmes are drawn in population order."""
    profiles = np.zeros((len(POPULATIONS), ix.n_g))
    for p, (subtype, cell_type, species) in enumerate(POPULATIONS):
        eta = type_eta[cell_type].copy()
        if subtype in SUBTYPE_MARKERS:
            for g, eff in SUBTYPE_MARKERS[subtype].items():
                eta[ix.mouse[g]] += eff
            idx, eff = _program(rng, ix.mouse_filler, SUBTYPE_PROGRAM_SIZE)
            eta[idx] += eff
            in_program[idx] = True
            programs[subtype] = [ix.symbols[i] for i in idx]
        own = (ix.is_human if species == "human" else ~ix.is_human) & ~ix.is_mito
        w = np.where(own, np.exp(eta), 0.0)
        if species == "mouse":
            fixed = {
                ix.mouse[g]: fr.get(subtype, fr.get(cell_type, fr["*"]))
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
    return profiles


def _mito_profiles(rng: np.random.Generator, ix: _Index) -> dict[str, np.ndarray]:
    mito = {}
    for species, idx in (("human", ix.mito_h), ("mouse", ix.mito_m)):
        v = np.zeros(ix.n_g)
        v[idx] = rng.gamma(4.0, 1.0, size=idx.size)
        mito[species] = v / v.sum()
    return mito


def _batch_genes(rng: np.random.Generator, ix: _Index) -> np.ndarray:
    # genes with a per-sample batch shift: filler only (markers and planted genes stay clean)
    filler_all = np.concatenate([ix.human_filler, ix.mouse_filler])
    n_batch = round(BATCH_GENE_FRACTION * ix.n_g)
    batch_idx = rng.choice(filler_all, size=min(n_batch, filler_all.size), replace=False)
    batch_genes = np.zeros(ix.n_g, dtype=bool)
    batch_genes[batch_idx] = True
    return batch_genes


def _condition_factor(ix: _Index) -> np.ndarray:
    # condition effects (test condition), applied to expected counts without renormalising
    condition_factor = np.ones((len(POPULATIONS), ix.n_g))
    ifn_idx = np.array([ix.mouse[g] for g in IFN_ALPHA_GENES])
    for p, (_subtype, cell_type, _species) in enumerate(POPULATIONS):
        if cell_type == DE_CELL_TYPE:
            condition_factor[p, ix.mouse[DE_GENE]] = 2.0**DE_LOG2FC
        if cell_type == PATHWAY_CELL_TYPE:
            condition_factor[p, ifn_idx] = 2.0**PATHWAY_LOG2FC
        if _subtype in LR_RISING_SUBTYPES:  # the planted rise of Gas6 -> AXL
            condition_factor[p, ix.mouse[LR_RISING["ligand"]]] = 2.0 ** LR_RISING["log2fc"]
    return condition_factor


def _null_genes(
    rng: np.random.Generator,
    ix: _Index,
    base: np.ndarray,
    in_program: np.ndarray,
    batch_genes: np.ndarray,
) -> list[str]:
    # null genes: expressed mouse filler with no programme and no batch shift
    mf_idx = ix.mouse_filler
    candidates = np.array([i for i in mf_idx if not in_program[i] and not batch_genes[i]])
    if not candidates.size:
        return []
    expressed = candidates[base[candidates] >= np.quantile(base[mf_idx], 0.4)]
    chosen = rng.choice(expressed, size=min(N_NULL_GENES, expressed.size), replace=False)
    return sorted(ix.symbols[i] for i in chosen)


def _build_model(rng: np.random.Generator, genes: _Genes) -> _Model:
    # the order of the draws below is part of the output: keep it
    ix = _index(genes)
    base = _base_expression(rng, ix)
    programs: dict[str, list[str]] = {}
    in_program = np.zeros(ix.n_g, dtype=bool)
    type_eta = _type_expression(rng, ix, base, programs, in_program)
    profiles = _population_profiles(rng, ix, type_eta, programs, in_program)
    mito = _mito_profiles(rng, ix)
    dispersion = rng.uniform(*DISPERSION_RANGE, size=ix.n_g)
    batch_genes = _batch_genes(rng, ix)
    return _Model(
        genes=genes,
        profiles=profiles,
        mito=mito,
        dispersion=dispersion,
        batch_genes=batch_genes,
        condition_factor=_condition_factor(ix),
        null_genes=_null_genes(rng, ix, base, in_program, batch_genes),
        programs=programs,
    )


# --- one sample --------------------------------------------------------------------------------
@dataclass
class _Cells:
    """The cells of a sample: population of each cell (and of its doublet partner, else -1)."""

    first: np.ndarray
    second: np.ndarray
    low_q: np.ndarray
    is_dbl: np.ndarray

    def take(self, order: np.ndarray) -> _Cells:
        return _Cells(self.first[order], self.second[order], self.low_q[order], self.is_dbl[order])


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


def _doublet_pairs(
    rng: np.random.Generator, n_dbl: int, fractions: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    # a third of the doublets pair the tumour with a mouse cell, the rest two mouse cell types
    mouse_pops = np.flatnonzero(_POP_SPECIES == "mouse")
    tumor_pop = int(np.flatnonzero(_POP_TYPE == "tumor")[0])
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
            others = mouse_pops[_POP_TYPE[mouse_pops] != _POP_TYPE[a]]
            p_other = fractions[others] / fractions[others].sum()
            b = int(rng.choice(others, p=p_other))
            pair = (a, b)
        d_first[j], d_second[j] = pair
    return d_first, d_second


def _draw_cells(rng: np.random.Generator, n_cells: int, *, is_test: bool) -> _Cells:
    expected = _subtype_fractions(COMPOSITION_TEST if is_test else COMPOSITION_REFERENCE)
    fractions = rng.dirichlet(DIRICHLET_CONCENTRATION * expected)

    n_dbl = int(rng.binomial(n_cells, DOUBLET_RATE))
    n_sing = n_cells - n_dbl
    first = np.repeat(np.arange(len(POPULATIONS)), rng.multinomial(n_sing, fractions))
    second = np.full(n_sing, -1)
    low_q = rng.random(n_sing) < LOW_QUALITY_RATE

    d_first, d_second = _doublet_pairs(rng, n_dbl, fractions)
    first = np.concatenate([first, d_first])
    second = np.concatenate([second, d_second])
    low_q = np.concatenate([low_q, np.zeros(n_dbl, dtype=bool)])
    is_dbl = second >= 0
    return _Cells(first, second, low_q, is_dbl).take(rng.permutation(n_cells))


def _expected_counts(
    rng: np.random.Generator, model: _Model, cells: _Cells, *, is_test: bool
) -> np.ndarray:
    lib_median = np.array([LIBRARY_MEDIAN[t] for t in _POP_TYPE])
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
            sel = _POP_SPECIES[pop_idx] == species
            mu[sel] += (mt[sel] * lib[sel])[:, None] * model.mito[species][None, :]
        return mu

    mu = _component(cells.first, cells.low_q)
    if cells.is_dbl.any():
        dbl = np.flatnonzero(cells.is_dbl)
        mu[dbl] += _component(cells.second[dbl], np.zeros(dbl.size, dtype=bool))

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
    return mu


def _truth_table(sample: str, condition: str, barcodes: np.ndarray, cells: _Cells) -> pd.DataFrame:
    sp1 = _POP_SPECIES[cells.first]
    sp2 = np.where(cells.is_dbl, _POP_SPECIES[np.maximum(cells.second, 0)], sp1)
    species = np.where(sp1 == sp2, sp1, "mixed")
    return pd.DataFrame(
        {
            "sample": sample,
            "barcode": barcodes.astype(str),
            "condition": condition,
            "species": species,
            "cell_type": _POP_TYPE[cells.first],
            "cell_subtype": _POP_SUBTYPE[cells.first],
            "is_doublet": cells.is_dbl,
            "is_low_quality": cells.low_q,
        },
        columns=list(TRUTH_COLUMNS),
    )


def _features(genes: _Genes) -> pd.DataFrame:
    return pd.DataFrame(
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


def _simulate_sample(
    rng: np.random.Generator,
    model: _Model,
    *,
    sample: str,
    condition: str,
    is_test: bool,
    n_cells: int,
) -> tuple[AnnData, pd.DataFrame]:
    # the order of the draws below is part of the output: keep it
    cells = _draw_cells(rng, n_cells, is_test=is_test)
    mu = _expected_counts(rng, model, cells, is_test=is_test)

    # gamma-Poisson counts
    phi = model.dispersion
    lam = rng.gamma(np.broadcast_to(1.0 / phi, mu.shape), mu * phi[None, :])
    counts = rng.poisson(lam).astype(np.int32)

    barcodes = _barcodes(rng, n_cells)
    sort = np.argsort(barcodes, kind="stable")
    barcodes = barcodes[sort]
    counts = counts[sort]
    cells = cells.take(sort)

    truth = _truth_table(sample, condition, barcodes, cells)
    x = sp.csr_matrix(counts)
    x.sort_indices()
    obs = pd.DataFrame(index=pd.Index(barcodes.astype(str)))
    adata = AnnData(X=x, obs=obs, var=_features(model.genes))
    return adata, truth


# --- the experiment ----------------------------------------------------------------------------
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
    conditions: Sequence[str] = CONDITIONS_DEFAULT,
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
        ``(reference, test)``; the planted effects are in ``test`` versus ``reference``. More
        arms may follow: each is treated like ``test`` (the same planted effects), so a
        contrast of two treated arms has none (a three-arm design's null comparison).
    n_genes_mouse, n_genes_human
        Genes per genome, named marker, mito and pathway genes included.
    gene_pool
        Mouse symbols to draw filler genes from (e.g.
        :func:`~tmeflow.simulate.genes.read_gmt_genes` of the MSigDB mouse hallmark GMT); human
        filler are upper-cased other symbols of the pool. Synthetic
        ``Gm10001``-style symbols fill what the pool cannot.
    seed
        Seed of everything; the same seed gives identical matrices and files.

    Returns
    -------
    SimulatedExperiment
        ``samples`` (per-sample AnnData of raw counts, CSR int32; ``var_names`` prefixed
        ``GRCh38_``/``mm10_``; ``var``: ``gene_ids``, ``feature_types``, ``genome``), ``truth``
        (one row per cell) and ``planted`` (:func:`~tmeflow.simulate.truth.planted_effects`).
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
            is_test=condition != conds[0],
            n_cells=n_cells,
        )
        samples[sample] = adata
        truths.append(truth)

    planted = planted_effects(
        seed=seed,
        conditions=conds,
        sizes={
            "n_replicates": n_rep,
            "cells_per_sample": n_cells,
            "n_genes_mouse": n_gm,
            "n_genes_human": n_gh,
        },
        null_genes=model.null_genes,
        rates={
            "doublet": DOUBLET_RATE,
            "mixed_doublet_share": round(MIXED_DOUBLET_SHARE, 4),
            "low_quality": LOW_QUALITY_RATE,
            "ambient_fraction": AMBIENT_FRACTION,
        },
    )
    truth = pd.concat(truths, ignore_index=True)
    return SimulatedExperiment(samples=samples, truth=truth, planted=planted)
