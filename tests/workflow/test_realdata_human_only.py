"""A human-only study on real human cells, run with the human_only preset (issue 30, item 2).

The human cells of 10x ``hgmm_100`` (HEK293T; the barcodes with >= 90% of their UMIs on hg19
features), with the human features only and their genome prefix removed (as a human-reference
count matrix holds them), split at random into four pseudo-samples of two arms (~15 cells
each). The config is ``config/presets/human_only/config.yaml`` (human TME panel, the human
Hallmark derived from the mouse one, no hypotheses) with the real-data tests' fast settings.

What must hold: every stage runs to the end; every cell is human; the human cells are scored
against the whole human panel (not only ``tumor``); the human gene sets are the ones tested;
the export is of human cells only; the empty hypothesis family gives an empty table.

Not tested here: which labels the cells get. HEK293T is one cell line, so the marker scores
(z-scored within the run's cells) have no contrast and every cell is ``unassigned`` (62 of 62
kept cells at the time of writing); the human panel's labels are tested on synthetic clusters
in ``tests/unit/annotate/test_cell_types.py``. Measured: 483 s on the 2-core machine shared
with other runs (tests/workflow/background.py cost below is for an idle machine).
"""

import gzip
import json
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
import yaml

from ..paths import shared_data_dir
from . import background
from .helpers import REPO, snakemake, write_config
from .test_realdata_shapes import FAST, split_mtx

pytestmark = [pytest.mark.workflow, pytest.mark.realdata]

PRESET = REPO / "config" / "presets" / "human_only" / "config.yaml"
HUMAN_GMT = "config/genesets/h.all.v2023.1.Hs.from_mouse_HCOP.gmt"


def human_only_mtx(src: Path, dest: Path, min_fraction: float = 0.9) -> Path:
    """The human cells and human features of a hg19+mm10 10x folder, prefixes removed."""
    matrix = sp.csr_matrix(scipy.io.mmread(str(src / "matrix.mtx.gz")))  # genes x cells
    features = pd.read_csv(src / "features.tsv.gz", sep="\t", header=None)
    with gzip.open(src / "barcodes.tsv.gz", "rt") as fh:
        barcodes = np.array(fh.read().split())
    human = features[0].str.startswith("hg19_").to_numpy()
    umis = np.asarray(matrix.sum(axis=0)).ravel()
    frac = np.asarray(matrix[human].sum(axis=0)).ravel() / np.maximum(umis, 1)
    cells = np.flatnonzero(frac >= min_fraction)
    dest.mkdir(parents=True)
    scipy.io.mmwrite(str(dest / "matrix.mtx"), matrix[human][:, cells].tocoo(), field="integer")
    with open(dest / "matrix.mtx", "rb") as fi, gzip.open(dest / "matrix.mtx.gz", "wb") as fo:
        fo.write(fi.read())
    (dest / "matrix.mtx").unlink()
    out = features[human].copy()
    out[0] = out[0].str.removeprefix("hg19_")
    out[1] = out[1].str.removeprefix("hg19_")
    out.to_csv(dest / "features.tsv.gz", sep="\t", header=False, index=False)
    with gzip.open(dest / "barcodes.tsv.gz", "wt") as fh:
        fh.write("".join(f"{b}\n" for b in barcodes[cells]))
    return dest


def _merge(base: dict, extra: dict) -> dict:
    """``extra`` over ``base``, dicts merged key by key (as Snakemake merges config files)."""
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _merge(out[key], value) if both else value
    return out


@background.register("human_only_split", cost_s=300)
def _build_human_only_split(work: Path) -> Path:
    src = human_only_mtx(shared_data_dir() / "hgmm_100_filtered_mtx", work / "human")
    conditions = {"c1": "control", "c2": "control", "t1": "treated", "t2": "treated"}
    folders = split_mtx(src, work / "data", list(conditions), seed=0)
    pd.DataFrame(
        {
            "sample": list(conditions),
            "condition": list(conditions.values()),
            "path": [str(folders[s]) for s in conditions],
        }
    ).to_csv(work / "samples.tsv", sep="\t", index=False)
    preset = yaml.safe_load(PRESET.read_text())
    cfg = write_config(work, _merge(preset, {"samples": "samples.tsv", **FAST}))
    snakemake(work, "--configfile", str(cfg))
    return work


@pytest.fixture(scope="module")
def human_only_split(shared_data, tmp_path_factory) -> Path:
    return background.result("human_only_split", tmp_path_factory)


def test_human_only_preset_runs_to_the_end_on_real_human_cells(human_only_split):
    work = human_only_split
    qc = pd.read_csv(work / "results/qc/summary.tsv", sep="\t")
    assert len(qc) == 4
    assert (qc["n_kept"] + qc["n_removed"] == qc["n_cells_in"]).all()
    adata = ad.read_h5ad(work / "results/annotate/annotated.h5ad", backed="r")
    assert adata.n_obs == int(qc["n_kept"].sum()) > 0
    assert set(adata.obs["species"].astype(str)) == {"human"}
    assert adata.uns["annotation"]["species_mode"] == "human"
    assert adata.uns["annotation"]["panel"] == "human_tme"
    # the human cells are scored against the whole human panel, not only `tumor`
    scored = {c.removeprefix("score_") for c in adata.obs.columns if c.startswith("score_")}
    assert {"tumor", "CAF", "TAM", "T", "B", "NK", "endothelial", "mast", "plasma"} <= scored
    labels = set(adata.obs["cell_type"].astype(str))
    panel = yaml.safe_load((REPO / "config/markers/human_tme.yaml").read_text())
    assert labels <= set(panel["cell_types"]) | {"unassigned"}, labels
    # GSEA tested the human Hallmark sets (human symbols), not the mouse default
    provenance = json.loads((work / "results/provenance.json").read_text())
    assert provenance["config"]["gsea"]["gene_sets"] == [HUMAN_GMT]
    # the confirmatory family is empty: an empty table, not an error
    assert pd.read_csv(work / "results/confirmatory.tsv", sep="\t").empty
    # one export, of human cells
    assert (work / "results/export/human.h5ad").is_file()
    assert not (work / "results/export/mouse.h5ad").exists()
    # communication within the one species: human pairs between the human groups
    mapping = pd.read_csv(work / "results/communication/mapping.tsv", sep="\t")
    assert set(mapping["sender_species"]) == set(mapping["receiver_species"]) == {"human"}
    pairs = pd.read_csv(work / "results/communication/comparison.tsv", sep="\t")
    groups = set(adata.obs["cell_type"].astype(str)) | set(adata.obs["cell_subtype"].astype(str))
    assert len(pairs) > 0 and set(pairs["sender"]) | set(pairs["receiver"]) <= groups
