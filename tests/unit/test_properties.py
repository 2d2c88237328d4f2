"""Property-based tests (hypothesis) of the library stages over generated data shapes (issue 13).

A small generator builds per-sample raw-count AnnData shaped as the workflow's objects after
ingest: 1-8 samples (animals) in two arms, 15-3,000 cells per sample (mostly small, the
extremes drawn sparingly), mouse-only, human-only or xenograft with a tumour share of
0.02-0.98 (prefixed ``GRCh38_``/``mm10_`` features), cell types absent from one arm or one
animal, genes absent from whole samples (zero counts, or not measured at all), shallow
samples (median ~300 UMIs) and a sample that loses every cell of one species (mito-rich
cells). Each stage then runs as in the workflow (species calls, QC metrics, QC filter, merge,
HVGs, DE, composition) and every property states what must hold whatever the shape.

Examples are derandomised (the same on every run and in CI) and sized to keep the whole file
near a minute on two cores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from tmeflow.cells import _qc as qc
from tmeflow.cells import _species as species
from tmeflow.embed import _cluster as cluster
from tmeflow.embed import _hvg as hvg
from tmeflow.embed import _integrate as integrate
from tmeflow.stats import _composition as composition
from tmeflow.stats import _de as de
from tmeflow.stats import _de_tables as de_levels

REF, TEST = "ctrl", "treated"
ARMS = (REF, TEST)
N_GENES = 24  # non-mitochondrial genes per species
HUMAN_GENES = [f"HG{i:02d}" for i in range(N_GENES)]
MOUSE_GENES = [f"Mg{i:02d}" for i in range(N_GENES)]
HUMAN_MT = ["MT-ND1", "MT-CO1", "MT-ATP6"]
MOUSE_MT = ["mt-Nd1", "mt-Co1", "mt-Atp6"]
#: cell types of each species' cells in a xenograft (tumour human, stroma mouse)
XENO_TYPES = {"human": ["tumor", "tumor_cycling"], "mouse": ["CAF", "TAM", "Tcell"]}
#: cell types of a single-species library (all on that species' genes)
SINGLE_TYPES = ["tumor", "CAF", "TAM", "Tcell"]
ALL_TYPES = sorted({*SINGLE_TYPES, *XENO_TYPES["human"], *XENO_TYPES["mouse"]})

SETTINGS = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
}


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    # the stages log a WARNING for every small group and fallback; keep pytest's capture small
    caplog.set_level(logging.ERROR)


# ------------------------------------------------------------------------------ the design
@dataclass(frozen=True)
class SampleSpec:
    name: str
    condition: str
    n_cells: int
    tumour_share: float  # xenograft: expected fraction of human cells
    types: dict[str, tuple[str, ...]]  # species -> cell types present in this animal
    depth: float  # median UMIs per cell
    absent_genes: tuple[int, ...]  # non-mito genes (index per species) with no counts here
    unmeasured: tuple[int, ...]  # non-mito genes (index per species) not in this matrix
    lose: str | None  # species whose every cell here is mito-rich (QC removes them all)


@dataclass(frozen=True)
class Design:
    mode: str  # "mouse", "human" or "xenograft"
    samples: tuple[SampleSpec, ...]
    seed: int

    @property
    def species(self) -> tuple[str, ...]:
        return ("human", "mouse") if self.mode == "xenograft" else (self.mode,)


def _types_of(mode: str) -> dict[str, list[str]]:
    return XENO_TYPES if mode == "xenograft" else {mode: SINGLE_TYPES}


@st.composite
def designs(
    draw,
    *,
    min_samples: int = 1,
    max_samples: int = 8,
    cells: st.SearchStrategy[int] | None = None,
    modes: tuple[str, ...] = ("mouse", "human", "xenograft"),
) -> Design:
    """A study: mode, 1-``max_samples`` animals over two arms, and per animal its shape."""
    mode = draw(st.sampled_from(modes))
    n = draw(st.integers(min_samples, max_samples))
    if cells is None:
        cells = st.one_of(st.integers(15, 120), st.sampled_from([15, 3000]))
    types = _types_of(mode)
    # one type may be missing from every animal of one arm
    gone = draw(st.none() | st.tuples(st.sampled_from(ARMS), st.sampled_from(ALL_TYPES)))
    lose_at = draw(st.none() | st.integers(0, n - 1))
    specs = []
    for i in range(n):
        cond = ARMS[i % 2] if n > 1 else draw(st.sampled_from(ARMS))
        present = {}
        for s, ts in types.items():
            sub = draw(st.lists(st.sampled_from(ts), min_size=1, max_size=len(ts), unique=True))
            if gone and gone[0] == cond and gone[1] in sub and len(sub) > 1:
                sub.remove(gone[1])
            present[s] = tuple(sorted(sub))
        specs.append(
            SampleSpec(
                name=f"s{i}",
                condition=cond,
                n_cells=draw(cells),
                tumour_share=draw(st.floats(0.02, 0.98)) if mode == "xenograft" else 1.0,
                types=present,
                depth=draw(st.sampled_from([300.0, 1500.0, 6000.0])),
                absent_genes=tuple(
                    draw(st.lists(st.integers(0, N_GENES - 1), max_size=6, unique=True))
                ),
                unmeasured=tuple(
                    draw(st.lists(st.integers(0, N_GENES - 1), max_size=2, unique=True))
                ),
                lose=(
                    draw(st.sampled_from(("human", "mouse") if mode == "xenograft" else (mode,)))
                    if lose_at == i
                    else None
                ),
            )
        )
    return Design(mode=mode, samples=tuple(specs), seed=draw(st.integers(0, 2**16)))


# ------------------------------------------------------------------------------ the counts
_PROFILE_RNG = np.random.default_rng(12345)
_BASE = _PROFILE_RNG.gamma(1.5, 1.0, N_GENES)
#: per cell type, relative expression over one species' non-mito genes (4 markers x 10)
PROFILES = {}
for _k, _t in enumerate(ALL_TYPES):
    _mu = _BASE.copy()
    _mu[(4 * _k) % N_GENES : (4 * _k) % N_GENES + 4] *= 10
    PROFILES[_t] = _mu / _mu.sum()


def _feature_names(mode: str) -> tuple[list[str], np.ndarray]:
    """Feature names as ingest writes them, and each feature's species."""
    if mode == "xenograft":
        names = [f"GRCh38_{g}" for g in HUMAN_GENES + HUMAN_MT]
        names += [f"mm10_{g}" for g in MOUSE_GENES + MOUSE_MT]
        sp_ = ["human"] * (N_GENES + 3) + ["mouse"] * (N_GENES + 3)
        return names, np.array(sp_)
    genes = (HUMAN_GENES + HUMAN_MT) if mode == "human" else (MOUSE_GENES + MOUSE_MT)
    return genes, np.array([mode] * len(genes))


def build_sample(design: Design, spec: SampleSpec, rng: np.random.Generator) -> AnnData:
    """Raw counts of one animal (``X``, float32 CSR) with the truth in ``obs``."""
    names, _ = _feature_names(design.mode)
    n, block = spec.n_cells, N_GENES + 3
    if design.mode == "xenograft":
        cell_sp = np.where(rng.random(n) < spec.tumour_share, "human", "mouse")
    else:
        cell_sp = np.full(n, design.mode)
    cell_type = np.array([rng.choice(spec.types[s]) for s in cell_sp], dtype=object)
    lib = np.maximum(rng.lognormal(np.log(spec.depth), 0.5, n), 5.0)
    mt = rng.uniform(0.01, 0.08, n)
    if spec.lose is not None:
        mt[cell_sp == spec.lose] = 0.6
    x = np.zeros((n, len(names)), dtype=np.float64)
    for j, s in enumerate(design.species):
        own = cell_sp == s
        if not own.any():
            continue
        cols = slice(j * block, (j + 1) * block)
        prof = np.stack([PROFILES[t] for t in cell_type[own]])
        mu = np.hstack([prof * (1 - mt[own, None]), np.repeat(mt[own, None] / 3, 3, axis=1)])
        x[np.ix_(own, np.arange(len(names))[cols])] = mu * lib[own, None]
    if design.mode == "xenograft":  # ambient RNA of the other species, ~1%
        x += 0.01 * lib[:, None] / len(names)
    counts = rng.poisson(x)
    # doublet-like cross-species cells: a few libraries half from each genome
    if design.mode == "xenograft" and n >= 40:
        mix = rng.choice(n, size=max(1, n // 50), replace=False)
        counts[mix] = rng.poisson(lib[mix, None] / len(names), size=(len(mix), len(names)))
    for j in range(len(design.species)):
        counts[:, [j * block + g for g in spec.absent_genes]] = 0
    keep = np.ones(len(names), dtype=bool)
    for j in range(len(design.species)):
        keep[[j * block + g for g in spec.unmeasured]] = False
    obs = pd.DataFrame(
        {
            "sample": spec.name,
            "condition": spec.condition,
            "true_species": cell_sp,
            "cell_type": cell_type,
            "predicted_doublet": rng.random(n) < 0.02,
        },
        index=[f"{spec.name}_c{i}" for i in range(n)],
    )
    a = AnnData(
        X=sp.csr_matrix(counts[:, keep].astype(np.float32)),
        obs=obs,
        var=pd.DataFrame(index=np.array(names)[keep]),
    )
    return a


def species_called(design: Design) -> list[AnnData]:
    """Every animal through ingest-shaped counts, species calls and QC metrics."""
    rng = np.random.default_rng(design.seed)
    out = []
    for spec in design.samples:
        a = build_sample(design, spec, rng)
        species.assign_species(a, mode=design.mode)
        qc.qc_metrics(a)
        out.append(a)
    return out


def _xenograft_study(*, cells: int = 80, lose: str | None = None) -> Design:
    """Four animals, two per arm; TAMs absent from the treated arm, Tcells from one animal."""
    specs = []
    for i in range(4):
        cond = ARMS[i % 2]
        mouse = ("CAF", "TAM", "Tcell") if cond == REF else ("CAF", "Tcell")
        if i == 2:
            mouse = ("CAF", "TAM")
        specs.append(
            SampleSpec(
                name=f"s{i}",
                condition=cond,
                n_cells=cells,
                tumour_share=0.5,
                types={"human": ("tumor",), "mouse": mouse},
                depth=1500.0,
                absent_genes=(3, 5) if i == 1 else (),
                unmeasured=(),
                lose=lose if i == 3 else None,
            )
        )
    return Design(mode="xenograft", samples=tuple(specs), seed=0)


QC_PARAMS = st.fixed_dictionaries(
    {
        "min_counts": st.sampled_from([0, 100, 500]),
        "min_genes": st.sampled_from([0, 20, 200]),
        "max_pct_mito": st.sampled_from([10.0, 25.0]),
        "min_group_cells": st.sampled_from([10, 30]),
        "remove_doublets": st.booleans(),
    }
)


# ------------------------------------------------------------------------------ 1. QC
def _check_qc(a: AnnData, kept: AnnData, m: dict, params: dict, spec: SampleSpec | None) -> None:
    obs = a.obs
    reasons = list(qc.REASONS)
    flags = obs[[f"qc_{r}" for r in reasons]].to_numpy(dtype=bool)
    # every input cell is kept, or removed with at least one reason
    assert (obs["qc_pass"].to_numpy() == ~flags.any(axis=1)).all()
    assert m["n_cells_in"] == a.n_obs
    assert m["n_kept"] + m["n_removed"] == m["n_cells_in"]
    assert kept.n_obs == m["n_kept"] == int(obs["qc_pass"].sum())
    assert set(kept.obs_names) == set(obs_names_passing(obs))
    for j, r in enumerate(reasons):
        assert m[f"removed_{r}"] == int(flags[:, j].sum()), r
    assert m["n_human_kept"] + m["n_mouse_kept"] + m["n_mixed_kept"] == m["n_kept"]
    if m["n_kept"] == 0:
        event("QC: a sample loses every cell")
        assert m["note"] and "removed all" in m["note"]
    else:
        assert m["note"] == ""
    # thresholds: one entry per (sample, species group) present, never borrowed
    thresholds = a.uns["qc"]["thresholds"]
    samples = obs["sample"].astype(str)
    multi = samples.nunique() > 1
    groups = obs.groupby([samples, obs["species"].astype(str)], observed=True).size()
    assert len(thresholds) == len(groups)
    for (s, g), n_g in groups.items():
        label = f"{s}.{g}" if multi else g
        th = thresholds[label]
        assert th["n_cells"] == n_g == m[f"n_cells_{label}"]
        in_g = ((samples == s) & (obs["species"].astype(str) == g)).to_numpy()
        cells = obs.loc[in_g]
        if n_g < params["min_group_cells"]:
            event("QC: a group too small for MADs")
            assert th["mad_source"] == "floors"
            assert th["min_counts"] == params["min_counts"]
            assert th["min_genes"] == params["min_genes"]
            assert th["max_pct_mito"] == params["max_pct_mito"]
        else:
            assert th["mad_source"] == "group"
            # the group's own MADs, from its own cells only
            lc = qc.mad_thresholds(np.log1p(cells["total_counts"]), nmads=5.0, side="lower")
            want = max(params["min_counts"], float(np.expm1(lc)) if np.isfinite(lc) else 0.0)
            assert th["min_counts"] == pytest.approx(want)
            um = qc.mad_thresholds(cells["pct_counts_mt"], nmads=3.0, side="upper")
            want = min(params["max_pct_mito"], float(um) if np.isfinite(um) else 100.0)
            assert th["max_pct_mito"] == pytest.approx(want)
        np.testing.assert_array_equal(
            cells["qc_low_counts"].to_numpy(), cells["total_counts"].to_numpy() < th["min_counts"]
        )
        np.testing.assert_array_equal(
            cells["qc_high_mito"].to_numpy(), cells["pct_counts_mt"].to_numpy() > th["max_pct_mito"]
        )
    # a species that loses every cell is still reported: its thresholds and cell count
    if spec is not None and spec.lose is not None:
        lost = obs["species"].astype(str) == spec.lose
        if lost.sum() and (obs.loc[lost, "pct_counts_mt"] > params["max_pct_mito"]).all():
            event("QC: a sample loses every cell of one species")
            assert m[f"n_{spec.lose}_kept"] == 0
            assert thresholds[spec.lose]["n_cells"] == int(lost.sum())
            assert f"n_cells_{spec.lose}" in m
            assert f"{spec.name}.{spec.lose}: removed {int(lost.sum())} of" in m["qc_warnings"]


def obs_names_passing(obs: pd.DataFrame) -> pd.Index:
    return obs.index[obs["qc_pass"].to_numpy(dtype=bool)]


_DEFAULT_QC = {
    "min_counts": 500,
    "min_genes": 200,
    "max_pct_mito": 25.0,
    "min_group_cells": 30,
    "remove_doublets": True,
}


@settings(max_examples=50, **SETTINGS)
@given(design=designs(), params=QC_PARAMS)
# the extremes: 3,000-cell animals, one losing all its mouse cells; 15-cell animals
@example(design=_xenograft_study(cells=3000, lose="mouse"), params=_DEFAULT_QC)
@example(design=_xenograft_study(cells=15, lose="human"), params=_DEFAULT_QC)
def test_qc_accounts_for_every_cell(design: Design, params: dict) -> None:
    raw = species_called(design)
    event(f"QC mode {design.mode}, {len(raw)} sample(s), max {max(a.n_obs for a in raw)} cells")
    for a, spec in zip(raw, design.samples, strict=True):
        kept, m = qc.filter_cells(a, allow_empty=True, **params)
        _check_qc(a, kept, m, params, spec)
    # the same cells filtered in one call: labels become <sample>.<group>, counts still add up
    if len(raw) > 1:
        merged = ad.concat(raw, join="inner")
        kept, m = qc.filter_cells(merged, allow_empty=True, **params)
        _check_qc(merged, kept, m, params, None)


# ------------------------------------------------------------------------------ 2. HVGs
def _after_qc(design: Design, params: dict) -> list[AnnData]:
    out = []
    for a in species_called(design):
        kept, _ = qc.filter_cells(a, allow_empty=True, **params)
        if kept.n_obs:
            out.append(kept)
    return out


LENIENT_QC = {
    "min_counts": 0,
    "min_genes": 0,
    "max_pct_mito": 25.0,
    "min_group_cells": 30,
    "remove_doublets": False,
}


@settings(max_examples=35, **SETTINGS)
@example(design=_xenograft_study(cells=15), n_top=200, min_fraction=0.25)
@example(design=_xenograft_study(cells=3000, lose="human"), n_top=20, min_fraction=0.25)
# found by this property: one 15-cell sample that loses every human cell leaves a species with
# a batch too small to fit (step "none"), which uns["hvg"]["step"] could not rank
@example(
    design=Design(
        mode="xenograft",
        samples=(
            SampleSpec(
                name="s0",
                condition="ctrl",
                n_cells=15,
                tumour_share=0.5,
                types={"human": ("tumor",), "mouse": ("CAF",)},
                depth=300.0,
                absent_genes=(),
                unmeasured=(),
                lose="human",
            ),
        ),
        seed=0,
    ),
    n_top=1,
    min_fraction=0.0,
)
@given(
    design=designs(),
    n_top=st.sampled_from([1, 2, 5, 20, 45, 200]),
    min_fraction=st.sampled_from([0.0, 0.25, 0.5]),
)
def test_hvg_count_is_min_of_n_top_and_eligible(
    design: Design, n_top: int, min_fraction: float
) -> None:
    samples = _after_qc(design, LENIENT_QC)
    event(f"HVG mode {design.mode}, {len(samples)} sample(s) after QC")
    if not samples:
        return
    merged = integrate.concat_samples(samples)
    hvg.select_hvgs(
        merged, n_top_genes=n_top, batch_key="sample", min_species_fraction=min_fraction
    )
    integrate.normalise(merged)
    info = merged.uns["hvg"]
    hv = merged.var["highly_variable"].to_numpy(dtype=bool)
    assert hv.sum() == info["n_selected"] == min(n_top, info["n_eligible"])
    is_mito = merged.var_names.str.lower().str.startswith("mt-")
    assert not (hv & is_mito).any()

    counts = sp.csr_matrix(merged.layers["counts"])
    var_sp = merged.var["species"].astype(str).to_numpy()
    obs_sp = merged.obs["species"].astype(str).to_numpy()
    groups = ("human", "mouse") if design.mode == "xenograft" else ("all",)
    assert info["mode"] == ("xenograft" if design.mode == "xenograft" else "single")
    for g in groups:
        cells = obs_sp == g if g != "all" else np.ones(merged.n_obs, dtype=bool)
        genes = var_sp == g if g != "all" else np.ones(merged.n_vars, dtype=bool)
        detected = np.asarray((counts[np.flatnonzero(cells)] > 0).sum(axis=0)).ravel() > 0
        eligible = int((detected & genes & ~is_mito).sum())
        gi = info["species"][g]
        assert gi["n_cells"] == int(cells.sum())
        assert gi["n_selected"] == int((hv & genes).sum())
        # eligible: non-mito genes detected in the species' cells; a step-3 fit (or a batch
        # too small to fit) may leave some unranked
        steps = {f["step"] for f in info["fits"][g].values()}
        event(f"HVG furthest step {info['step']}")
        if steps & {"seurat_v3_min_cells", "none"}:
            assert gi["n_eligible"] <= eligible
        else:
            assert gi["n_eligible"] == eligible
        # a gene selected for a species is one of its genes, detected in its cells
        assert not (hv & genes & ~detected).any()
    if design.mode == "xenograft":
        assert not (hv & ~np.isin(var_sp, ["human", "mouse"])).any()
        both = all(info["species"][g]["n_eligible"] > 0 for g in groups)
        if both and n_top >= 2 and min_fraction > 0:
            # both species get genes when both have cells with detected genes
            assert all(info["species"][g]["n_selected"] > 0 for g in groups)
    # normalise after HVGs keeps the raw counts and writes log1p CP10k
    assert merged.X.shape == merged.layers["counts"].shape


# ------------------------------------------------------------------------------ 3. DE
def _annotated(design: Design) -> AnnData | None:
    """The QC'd, merged object the DE rule reads: raw counts in layers['counts']."""
    samples = _after_qc(design, LENIENT_QC)
    if not samples:
        return None
    merged = integrate.concat_samples(samples)
    integrate.normalise(merged)
    # mixed (cross-species) cells get no cell type of their own; annotation labels them by
    # their truth here
    merged.obs["cell_type"] = pd.Categorical(merged.obs["cell_type"].astype(str))
    # CAFs split in two subtypes, every fifth CAF matching neither (``CAF_unassigned``)
    sub = merged.obs["cell_type"].astype(str).to_numpy().copy()
    caf = np.flatnonzero(sub == "CAF")
    sub[caf[0::2]], sub[caf[1::2]] = "myCAF", "iCAF"
    sub[caf[::5]] = "CAF_unassigned"
    merged.obs["cell_subtype"] = pd.Categorical(sub)
    return merged


@settings(max_examples=14, **SETTINGS)
@given(
    design=designs(min_samples=3, max_samples=6, cells=st.sampled_from([15, 40, 80, 120])),
    min_cells=st.sampled_from([3, 10]),
)
@example(design=_xenograft_study(), min_cells=10)
@example(design=_xenograft_study(cells=30, lose="mouse"), min_cells=5)
def test_de_reports_every_group(design: Design, min_cells: int) -> None:
    adata = _annotated(design)
    if adata is None:
        return
    observed = sorted(set(adata.obs["cell_type"].astype(str)))
    event(f"DE design {design.mode} {[(s.condition, s.n_cells) for s in design.samples]}")
    conds = set(adata.obs["condition"].astype(str))
    genes = ["Mg00", "HG00", "NotAGene"]
    settings = de.DESettings(
        condition_key="condition", reference=REF, test=TEST, min_cells=min_cells
    )
    res = de_levels.run_levels(adata, settings, genes=genes, subtypes=True)
    assert sorted(res.by_type) == observed
    summary = res.summary
    assert sorted(summary.loc[summary["level"] == "cell_type", "cell_type"]) == observed
    # subtypes: the split CAFs are tested (or say why not), the unassigned rest is listed
    subtypes = set(adata.obs["cell_subtype"].astype(str)) - set(observed)
    tested = subtypes - {"CAF_unassigned"}
    assert set(res.by_subtype) == tested
    at_sub = summary[summary["level"] == "cell_subtype"].set_index("cell_type")
    assert set(at_sub.index) == subtypes
    for label in subtypes:
        assert at_sub.loc[label, "method"]
        if at_sub.loc[label, "method"] == de.METHOD_NOT_TESTED:
            assert at_sub.loc[label, "note"].startswith("not tested")
        else:
            assert at_sub.loc[label, "n_genes"] > 0
    assert summary["method"].notna().all() and (summary["method"] != "").all()
    obs = adata.obs
    for group, table in {**res.by_type, **res.by_subtype}.items():
        key = "cell_subtype" if group in res.by_subtype else "cell_type"
        event(f"DE method {table.attrs['method']}")
        assert list(table.columns) == de.DE_COLUMNS
        row = summary[summary["level"] == key].set_index("cell_type").loc[group]
        in_g = obs[key].astype(str) == group
        n_arm = {c: int((in_g & (obs["condition"].astype(str) == c)).sum()) for c in ARMS}
        if len(table):
            assert table.attrs["method"] in (de.METHOD_PYDESEQ2, de.METHOD_WILCOXON)
            assert (table["method"] == table.attrs["method"]).all()
            assert row["method"] == table.attrs["method"] and row["n_genes"] == len(table)
            assert table["gene"].is_unique
            assert min(n_arm.values()) >= 2
            # animals with >= min_cells cells of the group, per arm
            per = obs.loc[in_g].groupby(["sample", "condition"], observed=True).size()
            reps = {
                c: int((per[per.index.get_level_values(1) == c] >= min_cells).sum()) for c in ARMS
            }
            want = de.METHOD_PYDESEQ2 if min(reps.values()) >= 2 else de.METHOD_WILCOXON
            assert table.attrs["method"] == want
            if want == de.METHOD_WILCOXON:
                assert table["note"].str.startswith("exploratory").all()
        else:
            assert table.attrs["method"] == de.METHOD_NOT_TESTED == row["method"]
            assert table.attrs["note"].startswith("not tested") and row["note"]
            if not conds >= set(ARMS):
                assert "has no samples" in table.attrs["note"]
            elif min(n_arm.values()) < 2:
                assert "at least 2 per arm" in table.attrs["note"]
    assert set(res.goi.columns) >= {"level"}


# ------------------------------------------------------------------------------ 4. composition
@st.composite
def compositions(draw) -> pd.DataFrame:
    """Annotated ``obs`` of 1-8 animals: 15-3,000 cells, types absent from animals or arms."""
    n = draw(st.integers(1, 8))
    gone = draw(st.none() | st.tuples(st.sampled_from(ARMS), st.sampled_from(ALL_TYPES)))
    rows = []
    for i in range(n):
        cond = ARMS[i % 2] if n > 1 else draw(st.sampled_from(ARMS))
        types = draw(st.lists(st.sampled_from(ALL_TYPES), min_size=1, unique=True))
        if gone and gone[0] == cond and gone[1] in types and len(types) > 1:
            types.remove(gone[1])
        weights = draw(st.lists(st.integers(1, 20), min_size=len(types), max_size=len(types)))
        n_cells = draw(st.one_of(st.integers(15, 300), st.sampled_from([15, 3000])))
        counts = np.random.default_rng(i).multinomial(n_cells, np.array(weights) / sum(weights))
        for t, k in zip(types, counts, strict=True):
            rows += [(f"s{i}", cond, t)] * int(k)
    obs = pd.DataFrame(rows, columns=["sample", "condition", "cell_type"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    if draw(st.booleans()):  # as annotate writes them, with unused categories
        obs["cell_type"] = pd.Categorical(obs["cell_type"], categories=[*ALL_TYPES, "unused"])
    return obs


@settings(max_examples=120, **SETTINGS)
@given(obs=compositions(), method=st.sampled_from(composition.METHODS))
def test_composition_sums_to_one_and_every_row_is_explained(obs: pd.DataFrame, method) -> None:
    props = composition.proportions(AnnData(obs=obs))
    types = sorted(set(obs["cell_type"].astype(str)))
    samples = sorted(set(obs["sample"]))
    assert len(props) == len(types) * len(samples)
    sums = props.groupby("sample")["fraction"].sum()
    np.testing.assert_allclose(sums.to_numpy(), 1.0)
    per_sample = props.groupby("sample")["n_cells"].sum().sort_index()
    assert per_sample.to_dict() == obs["sample"].value_counts().sort_index().to_dict()
    out = composition.compare_proportions(props, reference=REF, test=TEST, method=method)
    assert sorted(out["cell_type"]) == types
    for _, row in out.iterrows():
        has_stat = np.isfinite(row["pvalue"]) and np.isfinite(row["effect"])
        assert has_stat or row["note"], row.to_dict()
        if not np.isfinite(row["log2_ratio"]):
            assert row["note"], row.to_dict()
        if has_stat:
            assert 0 <= row["pvalue"] <= 1 and row["ci_low"] <= row["effect"] <= row["ci_high"]
        arms = props.groupby("condition")["sample"].nunique()
        if min(arms.get(REF, 0), arms.get(TEST, 0)) < 2:
            assert row["method"] == composition.DESCRIPTIVE


# ------------------------------------------------------------------------------ 5. clustering
# identical embeddings (``duplicated``) make scanpy's neighbours edit a CSR matrix in place:
# a SparseEfficiencyWarning of scanpy's own, a performance note, not an error
@pytest.mark.filterwarnings("ignore::scipy.sparse.SparseEfficiencyWarning")
@settings(max_examples=8, **SETTINGS)
@given(
    # 1-2 cells are not clustered (one cluster "0"), 3 get a random UMAP initialisation
    n_cells=st.one_of(st.integers(1, 40), st.sampled_from([1, 2, 3, 4, 15, 150])),
    n_groups=st.integers(1, 4),
    duplicated=st.booleans(),
    sweep=st.sampled_from([(), (0.5, 1.0), (0.2, 1.0, 2.0)]),
    choice=st.sampled_from(["fixed", "stability"]),
)
def test_clustering_labels_every_cell(n_cells, n_groups, duplicated, sweep, choice) -> None:
    rng = np.random.default_rng(n_cells)
    centres = rng.normal(0, 5, size=(n_groups, 4))
    emb = centres[rng.integers(0, n_groups, n_cells)] + rng.normal(0, 0.3, size=(n_cells, 4))
    if duplicated:  # identical cells (e.g. one barcode profile repeated)
        emb[: n_cells // 2] = emb[0]
    a = AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]))
    a.obsm["X_scVI"] = emb.astype(np.float32)
    kwargs = {"resolution": 1.0, "seed": 0, "sweep_resolutions": sweep, "sweep_seeds": 2}
    if choice == "stability" and not sweep and n_cells >= cluster.MIN_CELLS_TO_CLUSTER:
        # a configuration error, named as such (not a crash of the small data)
        with pytest.raises(ValueError, match="needs a resolution sweep"):
            cluster.embed_and_cluster(a, n_neighbors=15, choice=choice, **kwargs)
        return
    table = cluster.embed_and_cluster(a, n_neighbors=15, choice=choice, **kwargs)
    info = a.uns["cluster"]
    assert a.obs["leiden"].notna().all()
    assert info["n_clusters"] == a.obs["leiden"].nunique() >= 1
    assert a.obsm["X_umap"].shape == (n_cells, 2) and np.isfinite(a.obsm["X_umap"]).all()
    assert info["n_neighbors"] <= max(n_cells - 1, 0)
    assert len(table) == len(sweep)
    if sweep and (choice == "stability" or 1.0 in sweep):
        assert table["chosen"].sum() == 1
    if info["n_neighbors"] < 15:
        assert info["notes"]


@pytest.mark.parametrize("n_cells", [1, 2])
def test_one_or_two_cells_without_a_sweep_get_one_cluster(n_cells) -> None:
    # found by test_clustering_labels_every_cell: with `sweep_resolutions: []` (documented as
    # "skips it") the single-cluster path built a sweep table from arrays of lengths 0 and 1
    # and raised "All arrays must be of the same length"
    a = AnnData(obs=pd.DataFrame(index=[f"c{i}" for i in range(n_cells)]))
    a.obsm["X_scVI"] = np.zeros((n_cells, 4), dtype=np.float32)
    table = cluster.embed_and_cluster(a, resolution=1.0, seed=0, sweep_resolutions=[])
    assert table.empty and "chosen" in table.columns
    assert list(a.obs["leiden"].astype(str)) == ["0"] * n_cells
    assert a.uns["cluster"]["n_clusters"] == 1 and a.uns["cluster"]["notes"]
