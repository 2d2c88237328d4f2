"""Merging, normalisation, HVGs and scVI on small synthetic data."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from tmeflow.embed import _hvg as hvg
from tmeflow.embed import _integrate as integrate

from .._synthetic import clustered_counts


def per_sample(adata):
    out = []
    for s in sorted(adata.obs["sample"].unique()):
        a = adata[adata.obs["sample"] == s].copy()
        a.var["species"] = "mouse"
        out.append(a)
    return out


def test_merge_keeps_integer_counts_and_lognormalises():
    adata = clustered_counts()
    merged = integrate.merge_samples(per_sample(adata))
    assert merged.n_obs == adata.n_obs
    counts = merged.layers["counts"]
    assert counts.dtype == np.int32
    assert counts.sum() == int(adata.X.sum())
    row = 0
    expected = np.log1p(counts[row].toarray().ravel() / counts[row].sum() * 1e4)
    np.testing.assert_allclose(merged.X[row].toarray().ravel(), expected, rtol=1e-5)
    assert (merged.var["species"] == "mouse").all()


def test_merge_carries_each_samples_empty_droplets_into_varm():
    samples = per_sample(clustered_counts())
    samples[0].var["ambient_umis"] = np.arange(samples[0].n_vars, dtype=np.int64)
    merged = integrate.concat_samples(samples)
    name = str(samples[0].obs["sample"].iat[0])
    amb = merged.varm["ambient_umis"]
    assert list(amb.columns) == [name]
    np.testing.assert_array_equal(amb[name].to_numpy(), np.arange(merged.n_vars))
    assert "ambient_umis" not in merged.var.columns
    one = integrate.concat_samples(samples[:1])  # one sample: not left in var either
    assert "ambient_umis" not in one.var.columns and name in one.varm["ambient_umis"]


def test_merge_keeps_features_measured_in_every_sample(caplog):
    # g0..g4 are absent from s1's matrix: not measured there, so they must not read as zeros
    adata = clustered_counts()
    a, b = per_sample(adata)
    b = b[:, b.var_names[5:]].copy()
    with caplog.at_level("WARNING", logger="tmeflow.embed._integrate"):
        merged = integrate.merge_samples([a, b])
    assert merged.n_vars == adata.n_vars - 5
    assert not set(merged.var_names) & {f"g{i}" for i in range(5)}
    info = merged.uns["merge"]
    assert info["join"] == "inner" and info["n_features_dropped"] == 5
    assert info["n_features_union"] == adata.n_vars and info["n_features"] == merged.n_vars
    assert set(info["missing"]) == {"s1"}
    assert info["missing"]["s1"]["n_missing"] == 5
    assert info["missing"]["s1"]["examples"] == [f"g{i}" for i in range(5)]
    assert "sample s1 lacks 5" in caplog.text
    # the kept features' counts are untouched
    kept = merged.var_names
    np.testing.assert_array_equal(
        merged[merged.obs["sample"].to_numpy() == "s0"].layers["counts"].toarray(),
        a[:, kept].X.toarray(),
    )


def test_merge_of_samples_sharing_features_drops_nothing(caplog):
    adata = clustered_counts()
    with caplog.at_level("WARNING", logger="tmeflow.embed._integrate"):
        merged = integrate.merge_samples(per_sample(adata))
    assert list(merged.var_names) == list(adata.var_names)
    assert merged.uns["merge"]["n_features_dropped"] == 0 and merged.uns["merge"]["missing"] == {}
    assert "lacks" not in caplog.text


def test_merge_examples_are_capped_at_ten():
    adata = clustered_counts()
    a, b = per_sample(adata)
    b = b[:, b.var_names[30:]].copy()
    merged = integrate.concat_samples([a, b])
    assert merged.uns["merge"]["missing"]["s1"]["n_missing"] == 30
    assert len(merged.uns["merge"]["missing"]["s1"]["examples"]) == 10


def test_merge_refuses_samples_without_shared_features():
    adata = clustered_counts()
    a, b = per_sample(adata)
    b.var_names = [f"x{i}" for i in range(b.n_vars)]
    with pytest.raises(ValueError, match="share no feature"):
        integrate.concat_samples([a, b])


def test_merge_refuses_non_integer():
    adata = clustered_counts()
    a, b = per_sample(adata)
    b.X = b.X * 0.5
    with pytest.raises(ValueError, match="not integers"):
        integrate.merge_samples([a, b])


def test_hvgs_prefer_marker_genes_and_skip_mito():
    adata = clustered_counts(n_genes=400, markers_per_group=5)
    adata.var_names = ["mt-Co1", *list(adata.var_names[1:])]
    adata.X = sp.csr_matrix(adata.X)
    integrate.normalise(adata)
    hvg.select_hvgs(adata, n_top_genes=30, batch_key="sample")
    hv = adata.var_names[adata.var["highly_variable"]]
    assert len(hv) == 30
    assert "mt-Co1" not in hv
    markers = {f"g{i}" for i in range(1, 15)}
    assert len(markers & set(hv)) >= 8  # ~1 expected by chance (14 markers, 30 of 400)
    assert adata.uns["hvg"]["batch_key"] == "sample"
    assert adata.uns["hvg"]["min_cells"] == 1  # the first fit worked


def test_hvgs_survive_many_genes_seen_once():
    # thousands of genes with a single count share one (mean, variance) point and make
    # seurat_v3's loess fit singular (as on 800 real inDrops cells); the fit is repeated
    # without the genes detected in fewer than 3 cells
    rng = np.random.default_rng(0)
    n, g, once = 300, 2000, 1500
    x = rng.negative_binomial(2, 0.5, (n, g)).astype(np.float32)
    x[:, :once] = 0
    x[rng.integers(0, n, once), np.arange(once)] = 1
    adata = ad.AnnData(
        obs=pd.DataFrame({"sample": "s0"}, index=[f"c{i}" for i in range(n)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(g)]),
        layers={"counts": sp.csr_matrix(x)},
    )
    hvg.select_hvgs(adata, n_top_genes=200, batch_key="sample")
    hv = adata.var["highly_variable"].to_numpy()
    assert hv.sum() == 200 and not hv[:once].any()
    assert adata.uns["hvg"]["min_cells"] == 3


def test_default_epochs_heuristic():
    assert integrate.default_max_epochs(1000) == 400
    assert integrate.default_max_epochs(100_000) == 80


def test_scvi_latent_is_deterministic_and_separates_groups():
    adata = clustered_counts(n_per_group=80)
    integrate.normalise(adata)
    runs = []
    for _ in range(2):
        a = adata.copy()
        history = integrate.train_scvi(
            a, n_latent=4, n_hidden=32, max_epochs=15, early_stopping=False, seed=3, threads=1
        )
        runs.append(a.obsm["X_scVI"])
    assert runs[0].shape == (adata.n_obs, 4)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert len(history) == 15
    assert a.uns["scvi"]["epochs_run"] == 15 and a.uns["scvi"]["seed"] == 3
    # groups separate in the latent space: nearest centroid recovers the group labels
    z = pd.DataFrame(runs[0], index=adata.obs_names)
    centroids = z.groupby(adata.obs["group"].to_numpy()).mean()
    dist = ((z.to_numpy()[:, None, :] - centroids.to_numpy()[None]) ** 2).sum(-1)
    predicted = centroids.index.to_numpy()[dist.argmin(1)]
    assert (predicted == adata.obs["group"].to_numpy()).mean() > 0.95


def test_scvi_latent_depends_on_its_threads_not_on_the_jobs_cpus():
    """A job given 1 or 2 CPUs (``--cores``) trains the same model for one ``scvi.threads``."""
    from tmeflow.core import _runtime as runtime

    adata = clustered_counts(n_per_group=60)
    integrate.normalise(adata)
    runs = []
    for job_cpus in (1, 2):
        runtime.pin_threads(job_cpus)  # what runtime.setup does with the rule's threads
        a = adata.copy()
        integrate.train_scvi(
            a, n_latent=4, n_hidden=32, max_epochs=5, early_stopping=False, seed=1, threads=2
        )
        runs.append(a.obsm["X_scVI"])
        assert a.uns["scvi"]["threads"] == 2
    runtime.pin_threads(1)
    np.testing.assert_array_equal(runs[0], runs[1])


def _saved_model(tmp_path, one_sample: bool = False):
    """A tiny scVI model trained on 60 variable genes and saved: (the object, its folder)."""
    adata = clustered_counts(n_per_group=40)
    if one_sample:
        adata.obs["sample"] = "only"
    integrate.normalise(adata)
    hvg.select_hvgs(adata, n_top_genes=60)
    model_dir = tmp_path / "scvi_model"
    integrate.train_scvi(
        adata, n_latent=3, n_hidden=16, max_epochs=3, early_stopping=False, seed=1, threads=1,
        model_dir=model_dir,
    )  # fmt: skip
    return adata, model_dir


def test_scvi_model_is_saved_and_reloads_to_the_same_latent(tmp_path):
    adata, model_dir = _saved_model(tmp_path)
    assert (model_dir / "model.pt").is_file()
    assert not list(model_dir.glob("*.h5ad"))  # the AnnData is not saved with the model
    # the training input rebuilt from the integrated object: HVGs' counts, batch column
    sub = integrate.scvi_input(adata)
    assert list(sub.var_names) == list(adata.var_names[adata.var["highly_variable"]])
    assert list(sub.obs.columns) == ["sample"] and sub.X is None
    model = integrate.load_scvi(model_dir, adata)
    latent = model.get_latent_representation()
    np.testing.assert_allclose(latent, adata.obsm["X_scVI"], atol=1e-5)


def test_encoder_embeds_new_cells_in_the_kept_cells_space(tmp_path, caplog):
    """encode_cells on the training cells gives back their X_scVI (the same encoder, their own
    batches); cells of a sample the model never saw are NaN and logged."""
    adata, model_dir = _saved_model(tmp_path)
    query = adata[::3].copy()
    del query.var["highly_variable"]
    query.X = query.layers.pop("counts")  # counts in X, as the species stage writes them
    query.obs["sample"] = query.obs["sample"].astype(str)
    query.obs.iloc[:4, query.obs.columns.get_loc("sample")] = "unseen"
    with caplog.at_level("WARNING", logger="tmeflow"):
        latent = integrate.encode_cells(model_dir, query)
    assert latent.shape == (query.n_obs, 3)
    assert np.isnan(latent[:4]).all() and np.isfinite(latent[4:]).all()
    np.testing.assert_allclose(latent[4:], adata.obsm["X_scVI"][::3][4:], atol=1e-5)
    assert "4 cell(s) of batch(es) ['unseen']" in caplog.text


def test_encoder_of_a_one_batch_model(tmp_path):
    """One sample: scVI trains without a batch covariate; its cells still embed."""
    adata, model_dir = _saved_model(tmp_path, one_sample=True)
    latent = integrate.encode_cells(model_dir, adata[::4].copy())
    np.testing.assert_allclose(latent, adata.obsm["X_scVI"][::4], atol=1e-5)


def test_scvi_logs_every_epoch_with_losses_and_time_left(caplog):
    adata = clustered_counts(n_per_group=40)
    integrate.normalise(adata)
    with caplog.at_level("INFO", logger="tmeflow"):
        history = integrate.train_scvi(
            adata, n_latent=3, n_hidden=16, max_epochs=4, early_stopping=True, seed=1
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scVI epoch")]
    assert len(lines) == len(history) == adata.uns["scvi"]["epochs_run"] == 4
    assert [line.split(":")[0] for line in lines] == [f"scVI epoch {k}/4" for k in range(1, 5)]
    assert all("train loss" in line and "validation loss" in line for line in lines)
    assert all(" s, about " in line and "left" in line for line in lines)
    assert lines[-1].endswith("about 0 s left")


def test_epoch_log_without_validation_names_only_the_train_loss(caplog):
    adata = clustered_counts(n_per_group=40)
    integrate.normalise(adata)
    with caplog.at_level("INFO", logger="tmeflow"):
        integrate.train_scvi(
            adata, n_latent=3, n_hidden=16, max_epochs=2, early_stopping=False, seed=1
        )
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("scVI epoch")]
    assert len(lines) == 2
    assert all("train loss" in line and "validation" not in line for line in lines)


def test_epoch_log_duration_wording():
    from tmeflow.embed._epoch_log import _duration

    assert _duration(4.4) == "4 s"
    assert _duration(185) == "3 min 5 s"
    assert _duration(7620) == "2 h 7 min"


def test_scvi_model_reloads_on_an_object_without_its_hvg_flags(tmp_path):
    """The annotated object (or any later one) need not carry the HVG flags: the model folder
    names its training genes, and the input is rebuilt on them, in the training order."""
    import scvi

    adata, model_dir = _saved_model(tmp_path)
    trained = adata.var_names[adata.var["highly_variable"]]
    assert list(integrate.training_genes(model_dir)) == list(trained)
    later = adata[:, adata.var_names[::-1]].copy()  # other gene order, no HVG flags
    del later.var["highly_variable"]
    with pytest.raises(ValueError, match=r"Expected|var_names|number of genes"):
        scvi.model.SCVI.load(str(model_dir), adata=later)
    path = tmp_path / "annotated.h5ad"
    later.write_h5ad(path)
    model = integrate.load_scvi(model_dir, path)
    assert list(model.adata.var_names) == list(trained)
    np.testing.assert_allclose(model.get_latent_representation(), adata.obsm["X_scVI"], atol=1e-5)
    with pytest.raises(ValueError, match=r"genes the scVI model .* are not in the object"):
        integrate.load_scvi(model_dir, later[:, later.var_names[5:]].copy())
