"""The demo's saved scVI model reloads and gives back X_scVI; its rule log shows every epoch."""

import re

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from tmeflow.embed import _integrate as integrate

pytestmark = pytest.mark.workflow

EPOCH_LINE = re.compile(r"scVI epoch (\d+)/(\d+): train loss (\S+), (.*)$")


@pytest.fixture(scope="module")
def integrated(demo_run) -> ad.AnnData:
    return ad.read_h5ad(demo_run / "results/integrate/integrated.h5ad")


def test_saved_model_reloads_and_reproduces_x_scvi(demo_run, integrated):
    model_dir = demo_run / "results/integrate/scvi_model"
    assert (model_dir / "model.pt").is_file()
    assert not list(model_dir.glob("*.h5ad")), "the model is saved without its AnnData"
    model = integrate.load_scvi(model_dir, integrated)
    assert list(model.adata.var_names) == list(
        integrated.var_names[integrated.var["highly_variable"].to_numpy(dtype=bool)]
    )
    assert model.adata.n_obs == integrated.n_obs
    latent = model.get_latent_representation()
    np.testing.assert_allclose(latent, integrated.obsm["X_scVI"], atol=1e-5, rtol=1e-5)


def test_scvi_rule_log_shows_every_epoch(demo_run, integrated):
    logs = sorted((demo_run / "logs/integrate_scvi").glob("*.log"))
    assert logs, "no integrate_scvi log"
    lines = [
        m for p in logs for line in p.read_text().splitlines() if (m := EPOCH_LINE.search(line))
    ]
    info = integrated.uns["scvi"]
    n = int(info["epochs_run"])
    history = pd.read_csv(demo_run / "results/integrate/scvi_history.tsv", sep="\t")
    assert n == len(history) > 0
    assert [int(m.group(1)) for m in lines] == list(range(1, n + 1))
    assert {int(m.group(2)) for m in lines} == {int(info["max_epochs"])}
    for m in lines:
        float(m.group(3))
        rest = m.group(4)
        assert re.search(r"\d+\.\d+ s, about .+ left", rest), rest
        if info["early_stopping"]:  # validation runs every epoch
            assert rest.startswith("validation loss "), rest
