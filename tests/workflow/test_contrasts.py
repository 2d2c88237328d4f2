"""A study with three arms (issue 30 item 3): every arm upstream, every contrast downstream.

The demo's third arm (``combo``) carries the same planted effects as ``alectinib``
(:func:`tmeflow.simulate.simulate_experiment`), so ``combo`` vs ``control`` finds them and
``combo`` vs ``alectinib`` has none. The dry-run tests check the DAG and the parse-time checks;
the end-to-end run (2 animals per arm) checks each contrast's folder.
"""

from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
import yaml

from . import background
from .helpers import SMALL_DEMO, copy_workflow, dry_run_jobs, snakemake, write_config

pytestmark = pytest.mark.workflow

ARMS = ("control", "alectinib", "combo")
CONTRASTS = [
    {"reference": "control", "test": "combo"},
    {"reference": "alectinib", "test": "combo"},
]
NAMES = ["combo_vs_control", "combo_vs_alectinib"]
SHEET = "sample\tcondition\tpath\n" + "".join(
    f"{arm}_{i}\t{arm}\tresources/demo/{arm}_{i}{'.h5' if k % 2 == 0 else ''}\n"
    for k, (arm, i) in enumerate((a, i) for a in ARMS for i in (1, 2))
)
#: the small demo (tests/workflow/helpers.py) with 2 animals of 500 cells per arm, the DE on
#: the raw counts only and fewer epochs and permutations
THREE_ARMS = {
    **SMALL_DEMO,
    "samples": "config/samples_three_arms.tsv",
    "contrasts": CONTRASTS,
    "demo": {**SMALL_DEMO["demo"], "n_replicates": 2, "cells_per_sample": 500},
    "scvi": {**SMALL_DEMO["scvi"], "max_epochs": 30},
    "de": {},
    "gsea": {"permutations": 200},
    # the per-contrast sensitivity job with few settings (doublets off and the ambient layer
    # are always tried): the settings themselves are tested on the small demo
    "sensitivity": {
        "resolutions": [],
        "min_score": [0.3],
        "min_margin": [],
        "subcluster_resolution": [],
        "min_subcluster_cells": [],
        "marker_out": [],
        "de_min_cells": [],
        "de_methods": [],
        "min_fraction": [],
        "retrain": {"enabled": False},
    },
    "export": {"enabled": False},
}
#: the rules that run once per further contrast (workflow/rules/contrasts.smk)
PER_CONTRAST = {
    "de_pseudobulk", "composition_test", "confirmatory_test", "confirmatory_sensitivity",
    "confirmatory_robustness", "figures_confirmatory", "figures_sensitivity", "figures_stats",
    "gsea_prerank", "figures_gsea", "communication_scores", "figures_communication",
}  # fmt: skip


def _three_arm_config(work: Path, config: dict) -> Path:
    """The three-arm sheet and ``config`` written into a copy of the workflow."""
    (work / "config/samples_three_arms.tsv").write_text(SHEET)
    return write_config(work, config)


def _three_arm_copy(work: Path, config: dict) -> Path:
    copy_workflow(work)
    return _three_arm_config(work, config)


def test_dry_run_runs_every_contrast_once_and_every_arm_upstream(tmp_path):
    # with the DE on the ambient-corrected counts too (SMALL_DEMO's setting)
    cfg = _three_arm_copy(tmp_path, {**THREE_ARMS, "de": SMALL_DEMO["de"]})
    proc = snakemake(tmp_path, "-n", "--configfile", str(cfg))
    jobs = dry_run_jobs(proc.stdout + proc.stderr)
    for rule in {*PER_CONTRAST, "de_pseudobulk_corrected"}:
        assert jobs.get(rule) == 1, (rule, jobs)
        assert jobs.get(f"{rule}_contrast") == 2, (rule, jobs)
    # the upstream and the shared sensitivity labels: once, every arm's samples
    assert jobs["ingest_sample"] == 6 and jobs["qc_filter"] == 6
    assert jobs["integrate_scvi"] == 1 and jobs["sensitivity_labels"] == 1
    assert "sources_gene_contrast" not in jobs
    text = proc.stdout + proc.stderr
    for name in NAMES:
        assert f"results/contrasts/{name}/confirmatory.tsv" in text
    assert "resources/demo/combo_2/matrix.mtx.gz" in text


def test_a_third_arm_without_a_contrast_is_refused_at_parse_time(tmp_path):
    cfg = _three_arm_copy(tmp_path, {k: v for k, v in THREE_ARMS.items() if k != "contrasts"})
    proc = snakemake(tmp_path, "-n", "--configfile", str(cfg), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "combo_1='combo'" in text and "'contrasts'" in text, text[-2000:]
    # a contrast listed twice (reversed) names the key
    again = {**THREE_ARMS, "contrasts": [*CONTRASTS, {"reference": "combo", "test": "control"}]}
    cfg = write_config(tmp_path, again, "again.yaml")
    proc = snakemake(tmp_path, "-n", "--configfile", str(cfg), check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "contrasts[2]" in text and "already compared" in text, text[-2000:]


@background.register("three_arms", cost_s=400)
def _build_three_arms(work: Path) -> Path:
    cfg = _three_arm_config(work, THREE_ARMS)  # work: a fresh copy (background.py)
    snakemake(work, "--configfile", str(cfg))
    return work


@pytest.fixture(scope="module")
def three_arms(tmp_path_factory) -> Path:
    return background.result("three_arms", tmp_path_factory)


def _tsv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[""])


def test_every_arm_upstream(three_arms):
    summary = _tsv(three_arms / "results/qc/summary.tsv")
    assert set(summary["sample"]) == {f"{a}_{i}" for a in ARMS for i in (1, 2)}
    planted = yaml.safe_load((three_arms / "resources/demo/planted.yaml").read_text())
    assert planted["conditions"] == list(ARMS)
    labels = pd.read_csv(three_arms / "results/annotate/labels.tsv.gz", sep="\t")
    assert labels["cell"].str.startswith("combo_").any()
    # one palette for the three arms, in the AnnData as scanpy reads it
    annotated = ad.read_h5ad(three_arms / "results/annotate/annotated.h5ad", backed="r")
    arms = annotated.obs["condition"].cat.categories
    colors = dict(zip(arms, annotated.uns["condition_colors"], strict=True))
    assert set(colors) == set(ARMS) and len(set(colors.values())) == 3


def test_each_contrast_compares_its_own_two_arms(three_arms):
    for folder, (ref, test) in [
        ("results", ("control", "alectinib")),
        ("results/contrasts/combo_vs_control", ("control", "combo")),
        ("results/contrasts/combo_vs_alectinib", ("alectinib", "combo")),
    ]:
        d = three_arms / folder
        props = _tsv(d / "composition/proportions.tsv")
        assert set(props["condition"]) == {ref, test}, folder
        summary = _tsv(d / "de/summary.tsv")
        caf = summary[(summary["level"] == "cell_type") & (summary["cell_type"] == "CAF")].iloc[0]
        assert caf["n_samples_reference"] == 2 == caf["n_samples_test"], folder
        values = _tsv(d / "confirmatory_values.tsv")
        assert set(values["condition"].dropna()) <= {ref, test}, folder
        # the same family in every contrast, each row's Holm within it
        table = _tsv(d / "confirmatory.tsv")
        primary = _tsv(three_arms / "results/confirmatory.tsv")
        assert list(table["hypothesis"]) == list(primary["hypothesis"]), folder
        sens = _tsv(d / "sensitivity.tsv")
        assert set(sens["hypothesis"]) == set(table["hypothesis"]), folder
        for fig in ("confirmatory", "composition", "specification_curve", "gsea_dotplot"):
            assert (d / f"figures/{fig}.png").stat().st_size > 0, (folder, fig)
    log = (three_arms / "logs/de_pseudobulk/de_pseudobulk.log").read_text()
    assert "in other arms and left out (combo:" in log


def test_the_planted_change_is_found_against_control_only(three_arms):
    def mmp11(name: str) -> pd.Series:
        goi = _tsv(three_arms / f"results/contrasts/{name}/de/genes_of_interest.tsv")
        return goi[(goi["gene"] == "Mmp11") & (goi["cell_type"] == "CAF")].iloc[0]

    treated, same = mmp11("combo_vs_control"), mmp11("combo_vs_alectinib")
    assert treated["log2FoldChange"] > 1.0 and treated["padj"] < 0.05, treated.to_dict()
    assert abs(same["log2FoldChange"]) < 0.7 and not same["padj"] < 0.05, same.to_dict()


def test_nothing_left_to_do(three_arms):
    dry = snakemake(three_arms, "-n", "--configfile", str(three_arms / "test.yaml"))
    assert "Nothing to be done" in dry.stdout + dry.stderr
