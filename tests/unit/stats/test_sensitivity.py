"""Sensitivity of the confirmatory answers: the family under one changed choice at a time."""

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from anndata import AnnData
from sklearn.neighbors import kneighbors_graph

from tmeflow.annotate import _cell_types as annotate
from tmeflow.core import _h5ad as h5ad
from tmeflow.core import _panel as panel
from tmeflow.embed import _cluster as cluster
from tmeflow.embed import _integrate as integrate
from tmeflow.stats import _confirmatory as confirmatory
from tmeflow.stats import _de as de_mod
from tmeflow.stats import _sensitivity as sensitivity

from .._confirm_data import REF, TEST, stromal_counts

MARKERS = {"CAF": "mouse", "TAM": "mouse", "NK": "mouse", "B": "mouse", "tumor": "human"}
PANEL = {
    "cell_types": {
        t: {"species": s, "markers": [f"M_{t}_{i}" for i in range(3)], "source": "test"}
        for t, s in MARKERS.items()
    }
}
ANNOTATE = dict(
    species_mode="xenograft",
    min_score=0.5,
    min_margin=0.1,
    subcluster_resolution=0.5,
    n_neighbors=10,
    seed=0,
    min_subcluster_cells=20,
    refine_fraction=0.2,
    refine_resolution=1.0,
)
CONFIRM = dict(reference=REF, test=TEST, min_cells=5, threads=1)
HYPOTHESES = confirmatory.parse_hypotheses(
    [
        {"gene": "G0000", "cell_type": "CAF", "direction": "up"},  # planted 4x
        {"gene": "G0001", "cell_type": "CAF"},  # null
        {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},  # no change
    ]
)
N_LOW_FRACTION, N_DOUBLETS = 7, 5


def annotated(seed: int = 0) -> AnnData:
    """An annotated xenograft: CAF/TAM/NK/B + tumour, marker genes, graph, labels.

    G0000 is 4x up in treated CAFs. ``N_LOW_FRACTION`` TAMs have a majority-species fraction
    of 0.85 (kept at 0.8, mixed at 0.9), ``N_DOUBLETS`` other TAMs are flagged doublets (kept:
    the run had doublet removal off) and ``layers['counts_ambient_corrected']`` is a thinned copy of
    the counts.
    """
    rng = np.random.default_rng(seed)
    adata = stromal_counts(n_genes=80, cells_per_animal=80, fold=4.0, gene="G0000", seed=seed)
    types = adata.obs["cell_type"].astype(str).to_numpy()
    extra = np.zeros((adata.n_obs, 3 * len(MARKERS)), dtype=np.int32)
    centres = rng.normal(0, 4, (len(MARKERS), 5))
    emb = rng.normal(0, 0.5, (adata.n_obs, 5))
    for k, t in enumerate(MARKERS):
        cells = types == t
        extra[np.ix_(cells, range(3 * k, 3 * k + 3))] = rng.poisson(12, (cells.sum(), 3))
        emb[cells] += centres[k]
    counts = sp.hstack([adata.layers["counts"], sp.csr_matrix(extra)]).tocsr()
    genes = [*adata.var_names, *(g for t in MARKERS for g in PANEL["cell_types"][t]["markers"])]
    species = ["mouse"] * adata.n_vars + [s for s in MARKERS.values() for _ in range(3)]
    out = AnnData(
        X=counts.astype(np.float32),
        obs=adata.obs[["sample", "condition", "species"]].copy(),
        var=pd.DataFrame({"species": species}, index=genes),
    )
    integrate.normalise(out)
    out.obsm["X_scVI"] = emb.astype(np.float32)
    # a symmetric 10-NN graph (sklearn: no numba compilation, as scanpy's would take)
    knn = kneighbors_graph(emb, 10, include_self=False)
    out.obsp["connectivities"] = knn.maximum(knn.T).tocsr()
    out.obsp["distances"] = kneighbors_graph(emb, 10, mode="distance", include_self=False)
    out.uns["neighbors"] = {"connectivities_key": "connectivities", "distances_key": "distances"}
    cluster.leiden(out, resolution=1.0, seed=0)
    out.uns["cluster"] = {"resolution": 1.0, "seed": 0}
    human = (out.obs["species"] == "human").to_numpy()
    frac = np.where(human, 0.99, 0.01)
    low = rng.choice(np.flatnonzero(types == "TAM"), N_LOW_FRACTION, replace=False)
    frac[low] = 0.15
    out.obs["human_fraction"] = frac
    flagged = np.zeros(out.n_obs, dtype=bool)
    tams = np.setdiff1d(np.flatnonzero(types == "TAM"), low)
    flagged[rng.choice(tams, N_DOUBLETS, replace=False)] = True
    out.obs["predicted_doublet"] = flagged
    thin = out.layers["counts"].copy()
    thin.data = rng.binomial(thin.data, 0.8).astype(thin.dtype)
    out.layers[sensitivity.AMBIENT_LAYER] = thin
    annotate.annotate(out, PANEL, **ANNOTATE)
    return out


@pytest.fixture(scope="module")
def run():
    """One sensitivity run over every kind of setting, counting the PyDESeq2 fits."""
    adata = annotated()
    calls = []
    real = de_mod.run_de  # every DE fit goes through it (DESettings.run)

    def counting(cells, **kwargs):
        total = int(cells.layers["counts"].sum())  # tells the ambient layer from the raw one
        calls.append((tuple(cells.obs_names), total))
        return real(cells, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(de_mod, "run_de", counting)
        table = sensitivity.sensitivity(
            adata,
            HYPOTHESES,
            PANEL,
            resolutions=[1.0, 3.0],
            min_scores=[0.5, 50.0],
            min_margins=[0.2],
            min_fractions=[0.7, 0.9],
            min_fraction=0.8,
            doublets=False,
            annotate_options=ANNOTATE,
            confirm_options=CONFIRM,
        )
    return adata, table, calls


def test_one_row_per_hypothesis_and_setting(run):
    _, table, _ = run
    assert list(table.columns) == sensitivity.SENSITIVITY_COLUMNS
    settings = list(dict.fromkeys(zip(table["setting"], table["value"], strict=True)))
    # the configured resolution (1.0) and min_score (0.5) are not repeated as settings
    assert settings == [
        ("configured", "as run"),
        ("resolution", "3"),
        ("min_score", "50"),
        ("min_margin", "0.2"),
        ("min_fraction", "0.7"),
        ("min_fraction", "0.9"),
        ("doublets", "on"),
        ("ambient_correction", "on"),
    ]
    assert len(table) == len(settings) * len(HYPOTHESES)
    for _, rows in table.groupby(["setting", "value"], sort=False):
        assert list(rows["hypothesis"]) == [f"H{k}: {h.label}" for k, h in enumerate(HYPOTHESES, 1)]
    grid = sensitivity.verdict_grid(table)
    assert grid.shape == (len(HYPOTHESES), len(settings))
    assert list(grid.columns[:2]) == ["configured", "resolution 3"]


def test_planted_change_supported_and_null_not_at_every_recomputed_setting(run):
    _, table, _ = run
    computed = table[table["verdict"].isin(["supported", "not supported", "not testable"])]
    h1 = computed[computed["hypothesis"].str.startswith("H1:")]
    kept = h1[h1["value"] != "50"]  # min_score 50 leaves no cell type (next test)
    assert len(kept) == 6, h1.to_string()
    assert (kept["verdict"] == "supported").all(), kept.to_string()
    assert (kept["p_holm"] < 0.05).all() and kept["loo_sign_stable"].all()
    h2 = computed[computed["hypothesis"].str.startswith("H2:") & (computed["value"] != "50")]
    assert (h2["verdict"] == "not supported").all(), h2.to_string()
    # Holm within each setting: the adjusted p is never below the raw one
    assert (computed["p_holm"].dropna() >= computed["pvalue"].dropna() - 1e-15).all()


def test_setting_that_removes_the_cell_type_makes_its_hypotheses_not_testable(run):
    _, table, _ = run
    rows = table[(table["setting"] == "min_score") & (table["value"] == "50")]
    assert (rows["verdict"] == "not testable").all(), rows.to_string()
    assert rows["reason"].str.contains("no cell labelled 'CAF'").sum() == 2
    assert "TAM" in rows["reason"].iat[2]
    assert rows["p_holm"].isna().all()
    assert (rows["n_cells_changed"] > 0).all()


def test_species_doublet_and_ambient_settings_change_what_they_say(run):
    adata, table, _ = run
    by = table.set_index(["setting", "value", "hypothesis"])
    h1 = f"H1: {HYPOTHESES[0].label}"
    loose = table[(table["setting"] == "min_fraction") & (table["value"] == "0.7")]
    assert (loose["verdict"] == sensitivity.NOT_RECOMPUTABLE).all()
    assert loose["reason"].str.contains("QC removed").all() and loose["pvalue"].isna().all()
    strict = by.loc[("min_fraction", "0.9", h1)]
    assert strict["n_cells"] == adata.n_obs - N_LOW_FRACTION
    assert strict["n_cells_changed"] == N_LOW_FRACTION
    doublets = by.loc[("doublets", "on", h1)]
    assert doublets["n_cells"] == adata.n_obs - N_DOUBLETS
    assert doublets["verdict"] == "supported"
    ambient = by.loc[("ambient_correction", "on", h1)]
    configured = by.loc[("configured", "as run", h1)]
    # the thinned layer was tested, not the raw counts: another p, same cells and labels
    assert ambient["pvalue"] != configured["pvalue"] and ambient["n_cells_changed"] == 0
    assert sensitivity.AMBIENT_LAYER in ambient["note"]
    # the proportion hypothesis does not read counts: same p as configured
    h3 = f"H3: {HYPOTHESES[2].label}"
    assert (
        by.loc[("ambient_correction", "on", h3), "pvalue"]
        == by.loc[("configured", "as run", h3), "pvalue"]
    )


def test_fits_are_shared_between_settings_with_the_same_cells(run):
    """No group is fitted twice on the same cells and counts: the species and doublet
    settings remove TAMs only, so their CAF fits are the configured ones; the ambient layer
    gets its own. Settings that keep every label repeat the configured rows."""
    _, table, calls = run
    assert len(calls) == len(set(calls)), "a fit was repeated"
    # configured and ambient: one PyDESeq2 fit each (leaving an animal out is a one-gene GLM)
    assert len(calls) >= 2
    for setting, value in (("resolution", "3"), ("min_margin", "0.2")):
        rows = table[(table["setting"] == setting) & (table["value"] == value)]
        if (rows["n_cells_changed"] == 0).all():
            assert rows["note"].str.contains("same cells and labels").all()


def test_uncomputable_settings_without_any_fit():
    """No ambient layer: not available; doublet removal on in the run: off is not
    recomputable; a single-species run has no min_fraction setting."""
    adata = annotated(seed=1)
    del adata.layers[sensitivity.AMBIENT_LAYER]
    table = sensitivity.sensitivity(
        adata,
        HYPOTHESES[2:],
        PANEL,
        min_fractions=[0.9],
        doublets=True,
        annotate_options=ANNOTATE,
        confirm_options=CONFIRM,
    )
    off = table[(table["setting"] == "doublets") & (table["value"] == "off")]
    assert (off["verdict"] == sensitivity.NOT_RECOMPUTABLE).all()
    assert off["reason"].str.contains("qc.doublets").all()
    # the stricter rule needs the callers' own calls, which this object does not carry
    strict = table[(table["setting"] == "doublets") & (table["value"] == "either_caller")]
    assert len(strict) == len(HYPOTHESES[2:])
    assert (strict["verdict"] == sensitivity.NOT_RECOMPUTABLE).all()
    assert strict["reason"].str.contains("predicted_doublet_scrublet").all()
    ambient = table[table["setting"] == "ambient_correction"]
    assert (ambient["verdict"] == sensitivity.NOT_AVAILABLE).all()
    assert ambient["reason"].str.contains(sensitivity.AMBIENT_LAYER).all()
    single = sensitivity.settings(
        adata,
        resolutions=[],
        min_scores=[],
        min_margins=[],
        min_fractions=[0.9],
        min_fraction=0.8,
        annotate_options={**ANNOTATE, "species_mode": "mouse"},
        doublets=True,
        ambient=False,
    )
    assert [(s.name, s.value) for s in single] == [
        ("doublets", "off"),
        ("doublets", "either_caller"),
    ]


def test_stricter_doublet_rule_removes_cells_either_caller_called():
    """Removal on: the kept cells that Scrublet or the cluster-aware caller called on its own
    (the consensus kept them) are removed; the planted answers stay."""
    adata = annotated(seed=2)
    rng = np.random.default_rng(5)
    scrublet = np.zeros(adata.n_obs, dtype=bool)
    scrublet[rng.choice(adata.n_obs, 7, replace=False)] = True
    clustered = np.zeros(adata.n_obs, dtype=bool)
    clustered[rng.choice(np.flatnonzero(~scrublet), 5, replace=False)] = True
    adata.obs["predicted_doublet_scrublet"] = scrublet
    adata.obs["predicted_doublet_cluster"] = pd.array(clustered, dtype="boolean")
    adata.obs.loc[adata.obs_names[clustered][:1], "predicted_doublet_cluster"] = pd.NA
    table = sensitivity.sensitivity(
        adata,
        HYPOTHESES[:1],
        PANEL,
        doublets=True,
        ambient=False,
        annotate_options=ANNOTATE,
        confirm_options=CONFIRM,
    )
    row = table[(table["setting"] == "doublets") & (table["value"] == "either_caller")].iloc[0]
    assert row["n_cells"] == adata.n_obs - 7 - 4  # a missing call is not a call
    assert "11 kept cells" in row["note"]
    assert row["verdict"] == "supported"


def test_non_integer_ambient_layer_is_rounded_and_tested():
    """A corrected layer of fractional counts (as SoupX-like corrections give) is rounded
    for the count tests, says so, and changes the source share it is tested on."""
    adata = annotated(seed=2)
    layer = adata.layers["counts"].astype(np.float32)
    layer.data *= 0.6
    adata.layers[sensitivity.AMBIENT_LAYER] = layer
    gene = {"gene": "G0000", "cell_type": "CAF", "test": "source"}
    source = confirmatory.parse_hypotheses([gene])
    table = sensitivity.sensitivity(
        adata,
        source,
        PANEL,
        doublets=True,
        annotate_options=ANNOTATE,
        confirm_options=CONFIRM,
    ).set_index("setting")
    ambient, configured = table.loc["ambient_correction"], table.loc["configured"]
    assert ambient["verdict"] in ("supported", "not supported")
    assert "rounded to integers" in ambient["note"]
    assert ambient["effect"] != configured["effect"]
    assert adata.layers["counts"].dtype == np.int32  # the raw counts are untouched


def test_ambient_layer_read_when_its_setting_comes_gives_the_same_table(tmp_path):
    """The adapter reads the corrected layer from the file for its own setting only
    (``ambient_layer``); the table is the one computed with the layer in memory."""
    adata = annotated(seed=2)
    gene = confirmatory.parse_hypotheses([{"gene": "G0000", "cell_type": "CAF", "test": "source"}])
    kwargs = {"doublets": True, "annotate_options": ANNOTATE, "confirm_options": CONFIRM}
    in_memory = sensitivity.sensitivity(adata, gene, PANEL, **kwargs)
    path = tmp_path / "annotated.h5ad"
    adata.write_h5ad(path)
    lean = h5ad.read_h5ad(path, layers=("counts",))
    assert sensitivity.AMBIENT_LAYER not in lean.layers
    loads = []

    def load():
        loads.append(1)
        return h5ad.read_layer(path, sensitivity.AMBIENT_LAYER)

    lazy = sensitivity.sensitivity(lean, gene, PANEL, ambient_layer=load, **kwargs)
    assert loads == [1]
    pd.testing.assert_frame_equal(lazy, in_memory)
    assert h5ad.read_layer(path, "no_such_layer") is None
    missing = sensitivity.sensitivity(lean, gene, PANEL, ambient_layer=lambda: None, **kwargs)
    ambient = missing[missing["setting"] == "ambient_correction"]
    assert (ambient["verdict"] == sensitivity.NOT_AVAILABLE).all()


def test_x_read_for_the_annotation_settings_only_gives_the_same_table(tmp_path):
    """The adapter reads the object without X and passes ``x``: X is read once, for the
    settings that annotate again, and every setting's rows are the ones computed in memory."""
    adata = annotated(seed=3)
    gene = confirmatory.parse_hypotheses(
        [
            {"gene": "G0000", "cell_type": "CAF", "test": "source"},
            {"gene": "G0000", "cell_type": "CAF", "test": "change"},
        ]
    )
    kwargs = {
        "resolutions": [3.0],
        "min_scores": [0.9],
        "min_fractions": [0.9],
        "min_fraction": 0.8,
        "doublets": False,
        "annotate_options": ANNOTATE,
        "confirm_options": CONFIRM,
    }
    in_memory = sensitivity.sensitivity(adata, gene, PANEL, **kwargs)
    path = tmp_path / "annotated.h5ad"
    adata.write_h5ad(path)
    lean = h5ad.read_h5ad(path, skip=("X",), layers=("counts",))
    loads = []

    def load_x():
        loads.append(1)
        return sensitivity.marker_x(path, lean, PANEL)

    lazy = sensitivity.sensitivity(
        lean,
        gene,
        PANEL,
        x=load_x,
        ambient_layer=lambda: h5ad.read_layer(path, sensitivity.AMBIENT_LAYER),
        **kwargs,
    )
    assert loads == [1] and lean.X is None
    assert set(lazy["setting"]) >= {"resolution", "min_score", "min_fraction", "doublets"}
    assert (lazy.loc[lazy["setting"] == "min_fraction", "n_cells_changed"] > 0).all()
    pd.testing.assert_frame_equal(lazy, in_memory)
    assert h5ad.read_matrix(path, "layers/no_such_layer") is None
    # the marker columns only: X's values there, nothing elsewhere
    x = sensitivity.marker_x(path, lean, PANEL)
    markers = {g for gs in panel.all_markers(PANEL).values() for g in gs}
    on = lean.var_names.isin(list(markers))
    assert 0 < on.sum() < lean.n_vars and x.shape == adata.shape
    np.testing.assert_array_equal(x[:, on].toarray(), adata.X[:, on].toarray())
    assert x[:, ~on].nnz == 0
    no_emb = lean.copy()
    del no_emb.obsm["X_scVI"]  # the re-clustering would run a PCA of X: all of it
    assert (sensitivity.marker_x(path, no_emb, PANEL) != adata.X).nnz == 0


def test_each_setting_lets_the_previous_settings_objects_go():
    """Annotation leaves reference cycles; each setting's object is gone before the next."""
    import weakref

    adata = annotated(seed=2)
    made: list[weakref.ref] = []

    def recording(real):
        def wrapped(*args, **kwargs):
            alive = [r for r in made if r() is not None]
            assert not alive, f"{len(alive)} earlier setting objects still held"
            out = real(*args, **kwargs)
            obj = out[0] if isinstance(out, tuple) else out.adata  # _relabel / a _Variant
            if obj is not None:
                made.append(weakref.ref(obj))
            return out

        return wrapped

    with pytest.MonkeyPatch.context() as mp:
        # the labels of the annotation settings, their objects in the tests, the other settings
        mp.setattr(sensitivity, "_relabel", recording(sensitivity._relabel))
        mp.setattr(
            sensitivity.LabelSettings, "variant", recording(sensitivity.LabelSettings.variant)
        )
        mp.setattr(sensitivity, "_apply", recording(sensitivity._apply))
        sensitivity.sensitivity(
            adata,
            HYPOTHESES[:1],
            PANEL,
            resolutions=[0.5, 3.0],
            min_scores=[50.0],
            min_margins=[],
            min_fractions=[0.9],
            min_fraction=0.8,
            doublets=False,
            annotate_options=ANNOTATE,
            confirm_options=CONFIRM,
        )
    assert len(made) >= 7  # every kind of object was made and checked


def test_a_setting_that_keeps_every_cell_copies_no_counts():
    adata = annotated(seed=3)
    adata.obs["human_fraction"] = np.where(adata.obs["species"] == "human", 1.0, 0.0)
    variant = sensitivity._species(adata, 0.9, 0.8)
    assert variant.adata.n_obs == adata.n_obs
    assert variant.adata.layers["counts"] is adata.layers["counts"]


@pytest.mark.parametrize("block", [3, 1 << 20])
def test_round_in_place_by_blocks(block):
    values = np.array([0.4, 1.6, 2.0, -0.2, 7.5, 3.0, 2.49], dtype=np.float32)
    assert sensitivity._round_in_place(values, block=block)
    np.testing.assert_array_equal(values, [0, 2, 2, -0.0, 8, 3, 2])
    assert not sensitivity._round_in_place(values, block=block)  # already integral
    ints = np.array([1, 2, 3], dtype=np.int32)
    assert not sensitivity._round_in_place(ints, block=block)


def test_round_in_place_rounds_a_non_contiguous_array_too():
    values = np.asfortranarray([[0.4, 1.6, 2.0], [2.6, 3.0, -0.2]], dtype=np.float32)
    assert sensitivity._round_in_place(values, block=2)
    np.testing.assert_array_equal(values, [[0, 2, 2], [3, 3, -0.0]])


def test_subcluster_de_min_cells_and_de_method_settings():
    """Subtype re-clustering settings re-annotate; de.min_cells tests the same labels again
    with its own pseudobulk filter (a fresh fit, not the configured one's cache); de_method
    tests the change hypotheses by limma-voom (PyDESeq2, configured, is not repeated)."""
    adata = annotated()
    table = sensitivity.sensitivity(
        adata,
        HYPOTHESES,
        PANEL,
        subcluster_resolutions=[0.5, 1.5],  # 0.5 is the configured one: skipped
        min_subcluster_cells=[5],
        de_min_cells=[5, 60],  # 5 is configured; 60 is more CAFs than any animal has
        de_methods=["pydeseq2", "limma_voom"],
        min_fraction=0.8,
        doublets=False,
        ambient=False,
        annotate_options=ANNOTATE,
        confirm_options=CONFIRM,
    )
    settings = list(dict.fromkeys(zip(table["setting"], table["value"], strict=True)))
    assert settings == [
        ("configured", "as run"),
        ("subcluster_resolution", "1.5"),
        ("min_subcluster_cells", "5"),
        ("doublets", "on"),
        ("de_min_cells", "60"),
        ("de_method", "limma_voom"),
    ]
    by = table.set_index(["setting", "value", "hypothesis"])
    h1, h3 = (f"H{k}: {HYPOTHESES[k - 1].label}" for k in (1, 3))
    assert by.loc[("configured", "as run", h1), "verdict"] == "supported"
    strict = by.loc[("de_min_cells", "60", h1)]
    assert strict["verdict"] == "not testable" and strict["n_cells_changed"] == 0
    assert "de.min_cells 60" in strict["note"]
    # a proportion does not depend on the pseudobulk filter
    assert (
        by.loc[("de_min_cells", "60", h3), "pvalue"]
        == by.loc[("configured", "as run", h3), "pvalue"]
    )
    voom = by.loc[("de_method", "limma_voom", h1)]
    assert voom["verdict"] == "supported" and "limma-voom" in voom["effect_scale"]
    assert voom["pvalue"] != by.loc[("configured", "as run", h1), "pvalue"]
    assert "limma-voom" in voom["note"] and voom["n_cells_changed"] == 0
    sub = by.loc[("subcluster_resolution", "1.5", h1)]
    assert sub["n_cells"] == adata.n_obs and "subcluster_resolution 1.5" in sub["note"]


def test_marker_out_settings_name_every_marker_and_say_which_are_not_tried():
    markers = {
        "cell_types": {
            "CAF": {
                "markers": ["A", "B", "Gone"],
                "subtypes": {"myCAF": {"markers": ["C"]}, "iCAF": {"markers": ["D", "E"]}},
            },
            "TAM": {"markers": ["F", "G"]},
        }
    }
    out = sensitivity.marker_out_settings(markers, ["CAF"], ["A", "B", "C", "D", "E", "F"])
    assert list(out) == ["CAF:A", "CAF:B", "CAF:Gone", "CAF/myCAF:C", "CAF/iCAF:D", "CAF/iCAF:E"]
    assert out["CAF:A"] == "" and out["CAF/iCAF:E"] == ""
    assert "not among the data's genes" in out["CAF:Gone"]
    assert out["CAF/myCAF:C"].startswith("not available: C is the only marker")
    with pytest.raises(ValueError, match=r"marker_out names 'T'.*not a cell type"):
        sensitivity.marker_out_settings(markers, ["T"], ["A"])
    copy = sensitivity._without_marker(markers, "CAF/iCAF", "D")
    assert copy["cell_types"]["CAF"]["subtypes"]["iCAF"]["markers"] == ["E"]
    assert markers["cell_types"]["CAF"]["subtypes"]["iCAF"]["markers"] == ["D", "E"]


def test_leave_one_marker_out_relabels_when_the_marker_decides():
    """CAF known by a marker of its own and a gene every cell has: leaving out its own marker
    loses the CAFs (their hypotheses no longer supported); leaving out the other changes (almost)
    no label or verdict."""
    adata = annotated()
    markers = {"cell_types": {k: dict(v) for k, v in PANEL["cell_types"].items()}}
    caf = markers["cell_types"]["CAF"]
    caf["markers"] = ["M_CAF_0", "G0002"]  # G0002: a gene of every stromal cell
    annotate.annotate(adata, markers, **ANNOTATE)
    assert (adata.obs["cell_type"] == "CAF").sum() > 50
    table = sensitivity.sensitivity(
        adata,
        HYPOTHESES[:2],
        markers,
        marker_out=["CAF"],
        min_fraction=0.8,
        doublets=False,
        ambient=False,
        annotate_options=ANNOTATE,
        confirm_options=CONFIRM,
    )
    by = table.set_index(["setting", "value"]).sort_index()
    informative = by.loc[("marker_out", "CAF:M_CAF_0")]
    assert (informative["n_cells_changed"] > 50).all()
    assert (informative["verdict"] != "supported").all()
    assert by.loc[("configured", "as run")].iloc[0]["verdict"] == "supported"
    assert "M_CAF_0 left out of the CAF markers" in informative.iloc[0]["note"]
    other = by.loc[("marker_out", "CAF:G0002")]
    assert (other["n_cells_changed"] < 10).all()
    assert list(other["verdict"]) == list(by.loc[("configured", "as run"), "verdict"])


def test_labels_made_in_their_own_job_give_the_same_table(tmp_path):
    """label_settings written and read back, then tested: the table of the one-call run."""
    adata = annotated(seed=4)
    kwargs = dict(
        resolutions=[0.5],
        min_scores=[50.0],
        marker_out=["TAM"],
        annotate_options=ANNOTATE,
    )
    made = sensitivity.label_settings(adata, PANEL, **kwargs)
    made.write(tmp_path / "labels.tsv.gz", tmp_path / "label_settings.tsv")
    read = sensitivity.LabelSettings.read(
        tmp_path / "labels.tsv.gz", tmp_path / "label_settings.tsv"
    )
    pd.testing.assert_frame_equal(read.notes, made.notes)
    assert list(read.labels.columns) == list(made.labels.columns)
    assert {s.label for s in read.settings()} >= {"resolution 0.5", "marker_out TAM:M_TAM_1"}
    common = dict(min_fraction=0.8, doublets=False, ambient=False, confirm_options=CONFIRM)
    one = sensitivity.sensitivity(adata, HYPOTHESES, PANEL, **kwargs, **common)
    two = sensitivity.sensitivity(
        adata, HYPOTHESES, None, labels=read, annotate_options=ANNOTATE, **common
    )
    pd.testing.assert_frame_equal(one, two)
    # labels of other cells are refused, not silently misaligned
    with pytest.raises(ValueError, match="other cells"):
        sensitivity.sensitivity(
            adata[::-1].copy(), HYPOTHESES, None, labels=read, annotate_options=ANNOTATE, **common
        )


def _subtype_shift(real_change: bool, seed: int = 0) -> AnnData:
    """CAFs of 4 + 4 animals, myCAF (G0 at 20 UMIs per cell) and iCAF (2): the treated animals
    have 70% myCAFs, the controls 30%. ``real_change``: G0 also 3x up within both subtypes."""
    rng = np.random.default_rng(seed)
    n_genes, per_animal = 150, 150
    base = rng.gamma(2.0, 1.0, n_genes)
    blocks, obs = [], []
    for arm in (REF, TEST):
        for a in range(4):
            share = (0.3 if arm == REF else 0.7) + rng.normal(0, 0.04)
            n_my = round(share * per_animal)
            for sub, n in (("myCAF", n_my), ("iCAF", per_animal - n_my)):
                mean = np.tile(base, (n, 1))
                mean[:, 0] = 20.0 if sub == "myCAF" else 2.0
                if real_change and arm == TEST:
                    mean[:, 0] *= 3
                blocks.append(rng.negative_binomial(10, 10 / (10 + mean)))
                obs += [(f"{arm}_{a}", arm, "CAF", sub)] * n
    obs = pd.DataFrame(obs, columns=["sample", "condition", "cell_type", "cell_subtype"])
    obs.index = [f"c{i}" for i in range(len(obs))]
    counts = sp.csr_matrix(np.vstack(blocks).astype(np.float32))
    var = pd.DataFrame(index=[f"G{i}" for i in range(n_genes)])
    return AnnData(obs=obs, var=var, layers={"counts": counts})


@pytest.mark.parametrize("real_change", [False, True])
def test_subtype_mix_tells_a_shift_of_the_mix_from_a_change(real_change):
    """The CAF pseudobulk's G0 rises with the myCAF share alone: supported as configured, not
    once the shares are covariates or within each subtype; a real 3x change stays supported."""
    adata = _subtype_shift(real_change)
    hyps = confirmatory.parse_hypotheses([{"gene": "G0", "cell_type": "CAF", "direction": "up"}])
    opts = dict(reference=REF, test=TEST, min_cells=5, threads=1, shrink=False)
    plain, _ = confirmatory.confirm(adata, hyps, **opts)
    assert plain["verdict"].iat[0] == "supported"
    assert sensitivity.subtype_settings(adata, hyps) == [
        sensitivity.Setting("subtype_mix", "adjusted"),
        sensitivity.Setting("within_subtype", "iCAF"),
        sensitivity.Setting("within_subtype", "myCAF"),
    ]
    table = sensitivity.sensitivity(
        adata, hyps, None, labels=sensitivity.LabelSettings(
            pd.DataFrame(index=adata.obs_names),
            pd.DataFrame([{"setting": "configured", "value": "as run", "note": "",
                           "verdict": "", "reason": ""}]),
        ),
        min_fraction=0.8, doublets=True, ambient=False, annotate_options={},
        confirm_options={k: v for k, v in opts.items() if k != "shrink"},
    )  # fmt: skip
    by = table.set_index(["setting", "value"])["verdict"]
    others = [by[("subtype_mix", "adjusted")], by[("within_subtype", "myCAF")],
              by[("within_subtype", "iCAF")]]  # fmt: skip
    if real_change:
        assert others == ["supported"] * 3, table.to_string()
    else:
        assert "supported" not in others, table.to_string()


def test_removed_cells_make_doublets_off_and_a_looser_threshold_computable():
    """Removal on in the run, the removed cells given (as results/qc/removed_cells.h5ad):
    "doublets off" adds back the cells removed as doublets only, a looser min_fraction the
    mixed cells whose fraction reaches it and that the count-based call did not flag; the
    counts and labels are tested with the rest, and the note says how many came back."""
    adata = annotated(seed=2)
    caf = np.flatnonzero((adata.obs["cell_type"] == "CAF").to_numpy())[:9]
    extra = AnnData(
        obs=pd.DataFrame(
            {
                "sample": adata.obs["sample"].to_numpy()[caf],
                "condition": adata.obs["condition"].to_numpy()[caf],
                "species": "mouse",
                "cell_type": "CAF",
                "cell_subtype": "CAF",
                "human_fraction": [0.05] * 3 + [0.25] * 3 + [0.25] * 3,
                "crossspecies_doublet": [False] * 6 + [True] * 3,
                "removed_doublet": [True] * 3 + [False] * 6,
                "removed_mixed_species": [False] * 3 + [True] * 6,
            },
            index=[f"removed_{i}" for i in range(9)],
        ),
        var=pd.DataFrame(index=adata.var_names.copy()),
        layers={"counts": sp.csr_matrix(adata.layers["counts"][caf])},
    )
    loads = []

    def removed():
        loads.append(1)
        return extra

    table = sensitivity.sensitivity(
        adata,
        HYPOTHESES,
        PANEL,
        min_fractions=[0.7],
        min_fraction=0.8,
        doublets=True,
        ambient=False,
        removed=removed,
        annotate_options=ANNOTATE,
        confirm_options=CONFIRM,
    )

    def by(tab, setting, value):
        return tab[(tab["setting"] == setting) & (tab["value"] == value)]

    off = by(table, "doublets", "off")
    assert (off["n_cells"] == adata.n_obs + 3).all() and (off["n_cells_changed"] == 3).all()
    assert off["note"].str.startswith("doublet removal off: 3 cells").all()
    assert off["verdict"].iloc[0] == "supported"  # the planted change holds
    loose = by(table, "min_fraction", "0.7")
    assert (loose["n_cells"] == adata.n_obs + 3).all()  # not the 3 the count-based call flagged
    assert loose["note"].str.startswith("3 cells QC removed as mixed").all()
    assert len(loads) == 1  # read once, for both settings
    # without the removed cells both settings stay not recomputable
    plain = sensitivity.sensitivity(
        adata,
        HYPOTHESES[2:],
        PANEL,
        min_fractions=[0.7],
        min_fraction=0.8,
        doublets=True,
        ambient=False,
        annotate_options=ANNOTATE,
        confirm_options=CONFIRM,
    )
    assert (by(plain, "doublets", "off")["verdict"] == sensitivity.NOT_RECOMPUTABLE).all()
    assert (by(plain, "min_fraction", "0.7")["verdict"] == sensitivity.NOT_RECOMPUTABLE).all()
