"""Tests of the xenograft simulator (tmeflow.simulate); file round trips: test_tenx_roundtrip."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow import simulate as sim

SMALL = {"n_genes_mouse": 400, "n_genes_human": 200}


@pytest.fixture(scope="module")
def exp_small() -> sim.SimulatedExperiment:
    """Two replicates per condition, 600 cells each: enough for value checks, fast."""
    return sim.simulate_experiment(n_replicates=2, cells_per_sample=600, seed=7, **SMALL)


@pytest.fixture(scope="module")
def exp_tiny() -> sim.SimulatedExperiment:
    return sim.simulate_experiment(n_replicates=1, cells_per_sample=120, seed=3, **SMALL)


def _merged(experiment: sim.SimulatedExperiment) -> tuple[sp.csr_matrix, pd.DataFrame, pd.Index]:
    """Stack all samples (same gene order) and align the truth table."""
    first = next(iter(experiment.samples.values()))
    x = sp.vstack([a.X for a in experiment.samples.values()]).tocsr()
    keys = [(s, b) for s, a in experiment.samples.items() for b in a.obs_names]
    truth = experiment.truth.set_index(["sample", "barcode"]).loc[keys].reset_index()
    return x, truth, first.var_names


def _gene(x: sp.csr_matrix, var_names: pd.Index, name: str) -> np.ndarray:
    return np.asarray(x[:, var_names.get_loc(name)].todense()).ravel()


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# --- layout --------------------------------------------------------------------------------------
def test_demo_layout_alternates_formats() -> None:
    layout = sim.demo_layout(n_replicates=3)
    assert list(layout.columns) == ["sample", "condition", "path", "format"]
    assert list(layout["sample"]) == [
        "control_1",
        "control_2",
        "control_3",
        "alectinib_1",
        "alectinib_2",
        "alectinib_3",
    ]
    assert list(layout["condition"]) == ["control"] * 3 + ["alectinib"] * 3
    assert list(layout["format"]) == ["10x_h5", "10x_mtx"] * 3
    assert list(layout["path"]) == [
        "control_1.h5",
        "control_2",
        "control_3.h5",
        "alectinib_1",
        "alectinib_2.h5",
        "alectinib_3",
    ]


def test_demo_outputs_lists_every_file() -> None:
    out = sim.demo_outputs(n_replicates=1, conditions=("a", "b"))
    assert out == [
        "a_1.h5",
        "b_1/matrix.mtx.gz",
        "b_1/features.tsv.gz",
        "b_1/barcodes.tsv.gz",
        "truth.tsv",
        "planted.yaml",
    ]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"n_replicates": 0}, ValueError),
        ({"conditions": ("x", "x")}, ValueError),
        ({"conditions": ("x",)}, ValueError),
        ({"conditions": ("a b", "c")}, ValueError),
        ({"conditions": ("a", "b", "a")}, ValueError),
    ],
)
def test_demo_layout_rejects_bad_input(kwargs: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        sim.demo_layout(**kwargs)


def test_a_third_arm_is_treated_like_the_test_arm_and_leaves_the_others_unchanged() -> None:
    kw = dict(n_replicates=1, cells_per_sample=400, seed=5, **SMALL)
    two = sim.simulate_experiment(**kw)
    three = sim.simulate_experiment(conditions=("control", "alectinib", "combo"), **kw)
    assert list(three.samples) == ["control_1", "alectinib_1", "combo_1"]
    for sample in two.samples:  # the same draws: a third arm changes nothing of the first two
        assert (two.samples[sample].X != three.samples[sample].X).nnz == 0
    planted = three.planted
    assert planted["conditions"] == ["control", "alectinib", "combo"]
    assert planted["composition"]["combo"] == planted["composition"]["alectinib"]
    assert planted["composition"]["combo"] != planted["composition"]["control"]
    frac = pd.crosstab(three.truth["condition"], three.truth["cell_type"], normalize="index")
    assert frac.loc["combo", "TAM"] > frac.loc["control", "TAM"] + 0.05
    assert sim.demo_outputs(n_replicates=1, conditions=("control", "alectinib", "combo"))[-3:] == [
        "combo_1.h5",
        "truth.tsv",
        "planted.yaml",
    ]


def test_simulate_rejects_too_few_genes() -> None:
    with pytest.raises(ValueError, match="n_genes_mouse"):
        sim.simulate_experiment(n_replicates=1, cells_per_sample=60, n_genes_mouse=50)


# --- genes ---------------------------------------------------------------------------------------
def test_features_are_prefixed_unique_and_complete(exp_small: sim.SimulatedExperiment) -> None:
    adata = exp_small.samples["control_1"]
    var = adata.var
    assert adata.n_vars == 600
    assert var_names_unique(adata.var_names)
    human = var["genome"] == "GRCh38"
    assert human.sum() == 200
    assert adata.var_names[human].str.startswith("GRCh38_").all()
    assert adata.var_names[~human].str.startswith("mm10_").all()
    assert var["gene_ids"].iloc[0] == "GRCh38_ENSG00000000001"
    assert var["gene_ids"][~human].iloc[0] == "mm10_ENSMUSG00000000001"
    assert (var["feature_types"] == "Gene Expression").all()
    names = set(adata.var_names)
    for gene in ("GRCh38_AXL", "GRCh38_MT-CYB", "mm10_Gas6", "mm10_Mmp11", "mm10_Axl"):
        assert gene in names
    assert {f"mm10_{g}" for g in sim.IFN_ALPHA_GENES} <= names
    assert {f"mm10_{g}" for g in sim.MOUSE_MITO} <= names
    assert adata.X.dtype == np.int32
    assert sp.issparse(adata.X) and adata.X.format == "csr"


def var_names_unique(names: pd.Index) -> bool:
    return names.is_unique and names.str.upper().is_unique


def test_gene_pool_gives_filler_symbols(tmp_path: Path) -> None:
    gmt = tmp_path / "sets.gmt"
    pool = [f"Zfp{i}" for i in range(1, 701)] + ["Gas6", "Isg15"]  # named genes are skipped
    gmt.write_text(
        "SET_A\thttp://x\t" + "\t".join(pool[:400]) + "\nSET_B\t-\t" + "\t".join(pool[350:]) + "\n"
    )
    genes = sim.read_gmt_genes(gmt)
    assert genes == sorted(set(pool))
    exp = sim.simulate_experiment(
        n_replicates=1, cells_per_sample=60, gene_pool=genes, seed=1, **SMALL
    )
    var_names = next(iter(exp.samples.values())).var_names
    mouse_filler = [n for n in var_names if n.startswith("mm10_Zfp")]
    human_filler = [n for n in var_names if n.startswith("GRCh38_ZFP")]
    assert len(mouse_filler) == 400 - len(sim.genes._named_mouse_genes())
    assert len(human_filler) == 200 - len(sim.genes._named_human_genes())
    # human filler are upper-cased *other* pool symbols
    assert not {n[len("mm10_") :].upper() for n in mouse_filler} & {
        n[len("GRCh38_") :] for n in human_filler
    }
    assert not any(n.startswith(("mm10_Gm", "GRCh38_GM")) for n in var_names)


def test_read_gmt_genes_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        sim.read_gmt_genes(tmp_path / "absent.gmt")


# --- determinism ---------------------------------------------------------------------------------
def test_same_seed_same_data_and_bytes(tmp_path: Path, exp_tiny: sim.SimulatedExperiment) -> None:
    again = sim.simulate_experiment(n_replicates=1, cells_per_sample=120, seed=3, **SMALL)
    for name, adata in exp_tiny.samples.items():
        other = again.samples[name]
        assert (adata.X != other.X).nnz == 0
        assert list(adata.obs_names) == list(other.obs_names)
    pd.testing.assert_frame_equal(exp_tiny.truth, again.truth)
    sim.write_demo(tmp_path / "a", exp_tiny)
    sim.write_demo(tmp_path / "b", again)
    digest_a, digest_b = _digest(tmp_path / "a"), _digest(tmp_path / "b")
    assert sorted(digest_a) == sorted(sim.demo_outputs(n_replicates=1))
    assert digest_a == digest_b
    # gzip headers carry neither a time stamp nor a file name
    header = (tmp_path / "a" / "alectinib_1" / "matrix.mtx.gz").read_bytes()[:10]
    assert header[4:8] == b"\x00\x00\x00\x00"
    assert header[3] & 0x08 == 0


def test_different_seed_differs(exp_tiny: sim.SimulatedExperiment) -> None:
    other = sim.simulate_experiment(n_replicates=1, cells_per_sample=120, seed=4, **SMALL)
    a, b = exp_tiny.samples["control_1"], other.samples["control_1"]
    assert list(a.obs_names) != list(b.obs_names)
    assert a.X.sum() != b.X.sum()


def test_barcodes_are_10x_like(exp_small: sim.SimulatedExperiment) -> None:
    for adata in exp_small.samples.values():
        names = adata.obs_names
        assert names.is_unique
        assert names.str.fullmatch(r"[ACGT]{16}-1").all()
    truth = exp_small.truth
    assert list(truth.columns) == list(sim.TRUTH_COLUMNS)
    assert len(truth) == 4 * 600
    assert not truth.duplicated(["sample", "barcode"]).any()


# --- biology -------------------------------------------------------------------------------------
def test_composition_follows_planted_direction(exp_small: sim.SimulatedExperiment) -> None:
    truth = exp_small.truth
    frac = pd.crosstab(truth["condition"], truth["cell_type"], normalize="index")
    assert frac.loc["alectinib", "TAM"] > frac.loc["control", "TAM"] + 0.08
    assert frac.loc["alectinib", "tumor"] < frac.loc["control", "tumor"] - 0.08
    assert frac.loc["control", "tumor"] == pytest.approx(0.45, abs=0.07)
    assert frac.loc["alectinib", "TAM"] == pytest.approx(0.30, abs=0.07)
    assert set(truth["cell_type"]) == set(sim.CELL_TYPES)
    assert "T" not in set(truth["cell_type"])
    caf = truth[truth["cell_type"] == "CAF"]["cell_subtype"]
    assert set(caf) == {"myCAF", "iCAF"}
    assert (caf == "myCAF").mean() == pytest.approx(0.6, abs=0.12)
    plain = truth[~truth["cell_type"].isin(["CAF", "TAM"])]
    assert (plain["cell_type"] == plain["cell_subtype"]).all()


def test_no_t_cell_markers(exp_small: sim.SimulatedExperiment) -> None:
    x, _truth, var_names = _merged(exp_small)
    t_counts = sum(_gene(x, var_names, f"mm10_{g}") for g in sim.T_CELL_MARKERS)
    assert t_counts.mean() < 0.05
    assert (t_counts >= 3).mean() < 0.005
    nk = _gene(x, var_names, "mm10_Nkg7")
    assert nk.mean() > 10 * t_counts.mean()


def test_species_purity(exp_small: sim.SimulatedExperiment) -> None:
    x, truth, var_names = _merged(exp_small)
    human = np.asarray(var_names.str.startswith("GRCh38_"))
    total = np.asarray(x.sum(axis=1)).ravel()
    human_frac = np.asarray(x[:, human].sum(axis=1)).ravel() / total
    singlet = ~truth["is_doublet"].to_numpy()
    is_h = (truth["species"] == "human").to_numpy() & singlet
    is_m = (truth["species"] == "mouse").to_numpy() & singlet
    assert (human_frac[is_h] > 0.95).all()
    assert (human_frac[is_m] < 0.05).all()
    # ambient RNA: human cells still carry a few mouse UMIs
    assert np.median(1 - human_frac[is_h]) > 0.002
    mixed = (truth["species"] == "mixed").to_numpy()
    assert mixed.sum() > 0
    assert np.median(human_frac[mixed]) == pytest.approx(0.6, abs=0.3)
    assert (truth.loc[mixed, "is_doublet"]).all()


def test_tumor_and_type_markers_are_specific(exp_small: sim.SimulatedExperiment) -> None:
    x, truth, var_names = _merged(exp_small)
    good = ~truth["is_doublet"] & ~truth["is_low_quality"]
    for gene, cell_type in [
        ("GRCh38_AXL", "tumor"),
        ("mm10_Col1a1", "CAF"),
        ("mm10_C1qa", "TAM"),
        ("mm10_S100a8", "neutrophil"),
        ("mm10_Cd79a", "B"),
        ("mm10_Pecam1", "endothelial"),
        ("mm10_Rgs5", "pericyte"),
        ("mm10_Ncr1", "NK"),
        ("mm10_Ccr2", "monocyte"),
    ]:
        means = (
            pd.Series(_gene(x, var_names, gene)[good])
            .groupby(truth.loc[good, "cell_type"].to_numpy())
            .mean()
        )
        assert means.idxmax() == cell_type, gene
        assert means[cell_type] > 8 * means.drop(cell_type).max(), gene


def test_gas6_highest_in_caf_and_tam_mrc1(exp_small: sim.SimulatedExperiment) -> None:
    x, truth, var_names = _merged(exp_small)
    good = (~truth["is_doublet"] & ~truth["is_low_quality"]).to_numpy()
    gas6 = pd.Series(_gene(x, var_names, "mm10_Gas6")[good])
    means = gas6.groupby(truth.loc[good, "cell_subtype"].to_numpy()).mean().sort_values()
    assert set(means.index[-3:]) == {"myCAF", "iCAF", "TAM_Mrc1"}
    assert means["TAM_Mrc1"] > 4 * means["TAM_Spp1"]
    # in the reference arm: treated sources make 4x the Gas6, and so does the treated soup
    ref = good & (truth["condition"] == "control").to_numpy()
    ref_means = (
        pd.Series(_gene(x, var_names, "mm10_Gas6")[ref])
        .groupby(truth.loc[ref, "cell_subtype"].to_numpy())
        .mean()
    )
    others = ref_means.drop(["myCAF", "iCAF", "TAM_Mrc1", "TAM_Spp1"]).max()
    assert ref_means["TAM_Spp1"] > 4 * others


def test_mmp11_planted_fold_change_in_caf() -> None:
    exp = sim.simulate_experiment(n_replicates=2, cells_per_sample=1000, seed=11, **SMALL)
    x, truth, var_names = _merged(exp)
    caf = ((truth["cell_type"] == "CAF") & ~truth["is_doublet"] & ~truth["is_low_quality"]).values
    mmp11 = _gene(x, var_names, "mm10_Mmp11")
    # normalise per cell to remove library-size differences between samples
    total = np.asarray(x.sum(axis=1)).ravel()
    rate = mmp11 / total * 5000
    ctrl = caf & (truth["condition"] == "control").to_numpy()
    test = caf & (truth["condition"] == "alectinib").to_numpy()
    assert 0.8 < mmp11[ctrl].mean() < 2.5
    assert rate[test].mean() / rate[ctrl].mean() == pytest.approx(4.0, rel=0.35)
    # a null gene does not move
    tam = ((truth["cell_type"] == "TAM") & ~truth["is_doublet"]).to_numpy()
    null = sum(_gene(x, var_names, f"mm10_{g}") for g in exp.planted["null_genes"][:50])
    null_rate = null / total
    is_test = (truth["condition"] == "alectinib").to_numpy()
    ratio = null_rate[tam & is_test].mean() / null_rate[tam & ~is_test].mean()
    assert ratio == pytest.approx(1.0, abs=0.2)


def test_pathway_genes_up_in_tam(exp_small: sim.SimulatedExperiment) -> None:
    x, truth, var_names = _merged(exp_small)
    total = np.asarray(x.sum(axis=1)).ravel()
    ifn = sum(_gene(x, var_names, f"mm10_{g}") for g in sim.IFN_ALPHA_GENES) / total
    good = (~truth["is_doublet"] & ~truth["is_low_quality"]).to_numpy()
    cond = truth["condition"].to_numpy()
    for cell_type, expected in [("TAM", 2**1.5), ("CAF", 1.0), ("monocyte", 1.0)]:
        sel = good & (truth["cell_type"] == cell_type).to_numpy()
        ratio = ifn[sel & (cond == "alectinib")].mean() / ifn[sel & (cond == "control")].mean()
        assert ratio == pytest.approx(expected, rel=0.3), cell_type


def test_low_quality_cells_have_high_mito(exp_small: sim.SimulatedExperiment) -> None:
    x, truth, var_names = _merged(exp_small)
    mito = np.asarray(var_names.str.contains(r"_(?:MT-|mt-)"))
    assert mito.sum() == 26
    total = np.asarray(x.sum(axis=1)).ravel()
    pct = np.asarray(x[:, mito].sum(axis=1)).ravel() / total
    lowq = truth["is_low_quality"].to_numpy()
    good = ~lowq & ~truth["is_doublet"].to_numpy()
    assert lowq.mean() == pytest.approx(0.04, abs=0.02)
    assert np.median(pct[good]) == pytest.approx(0.045, abs=0.015)
    assert np.quantile(pct[good], 0.99) < 0.1
    assert (pct[lowq] > 0.2).all()
    assert np.median(total[lowq]) < 0.3 * np.median(total[good])


def test_doublets_have_larger_libraries(exp_small: sim.SimulatedExperiment) -> None:
    x, truth, _ = _merged(exp_small)
    total = np.asarray(x.sum(axis=1)).ravel()
    dbl = truth["is_doublet"].to_numpy()
    assert dbl.mean() == pytest.approx(0.04, abs=0.02)
    mouse = (truth["species"] == "mouse").to_numpy()
    singlet_good = ~dbl & ~truth["is_low_quality"].to_numpy()
    assert np.median(total[dbl & mouse]) > 1.5 * np.median(total[singlet_good & mouse])
    mixed_share = (truth.loc[dbl, "species"] == "mixed").mean()
    assert mixed_share == pytest.approx(1 / 3, abs=0.2)


def test_planted_metadata(exp_small: sim.SimulatedExperiment) -> None:
    planted = exp_small.planted
    assert planted["de"] == [{"gene": "Mmp11", "cell_type": "CAF", "log2fc": 2.0}]
    assert planted["pathway"]["name"] == "HALLMARK_INTERFERON_ALPHA_RESPONSE"
    assert planted["pathway"]["cell_type"] == "TAM"
    assert planted["pathway"]["log2fc"] == 1.5
    assert planted["conditions"] == ["control", "alectinib"]
    assert planted["gas6_sources"] == ["CAF", "TAM_Mrc1"]
    rising, flat = planted["communication"]["rising"], planted["communication"]["flat"]
    assert (rising["ligand"], rising["receptor"], rising["log2fc"]) == ("Gas6", "AXL", 2.0)
    assert rising["senders"] == ["CAF", "TAM_Mrc1"] and rising["receiver"] == "tumor"
    assert (flat["ligand"], flat["receptor"], flat["senders"]) == ("Dcn", "EGFR", ["CAF"])
    comp = planted["composition"]
    assert comp["control"]["TAM"] == 0.15 and comp["alectinib"]["TAM"] == 0.30
    assert sum(comp["alectinib"].values()) == pytest.approx(1.0)
    nulls = set(planted["null_genes"])
    assert 20 <= len(nulls) <= 300
    assert not nulls & {"Gas6", "Mmp11", "Axl", *sim.IFN_ALPHA_GENES}
    mouse_names = {n[len("mm10_") :] for n in exp_small.samples["control_1"].var_names}
    assert nulls <= mouse_names
    default = sim.simulate_experiment(n_replicates=1, cells_per_sample=60, seed=0)
    assert len(default.planted["null_genes"]) == 300


def test_gas6_doubles_in_its_sources_only_in_the_test_arm() -> None:
    """The planted communication rise: Gas6's condition factor is 4 in myCAF, iCAF and
    TAM_Mrc1 and 1 elsewhere; Dcn and the human AXL/EGFR have none."""
    from tmeflow.simulate import model

    genes = model._build_genes(
        np.random.default_rng(0), n_genes_mouse=400, n_genes_human=150, gene_pool=None
    )
    ix = model._index(genes)
    factor = model._condition_factor(ix)
    subtypes = [p[0] for p in model.POPULATIONS]
    gas6 = dict(zip(subtypes, factor[:, ix.mouse["Gas6"]], strict=True))
    assert {s for s, f in gas6.items() if f == 4.0} == {"myCAF", "iCAF", "TAM_Mrc1"}
    assert all(f == 1.0 for s, f in gas6.items() if s not in {"myCAF", "iCAF", "TAM_Mrc1"})
    assert (factor[:, ix.mouse["Dcn"]] == 1.0).all()
