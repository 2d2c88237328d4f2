"""tmeflow imported as a Snakemake ``module`` by a workflow in another folder (dry runs, seconds).

The host Snakefile is the one README.md ("Using tmeflow as a module") shows: its own config,
``module tmeflow: snakefile: <clone>/workflow/Snakefile`` and ``use rule * from tmeflow as
tmeflow_*``. Paths in the config are relative to the host's working directory; the shipped
marker panels and gene sets are found from anywhere (absolute paths, or the schema's defaults).
"""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .helpers import REPO, dry_run_jobs

#: Rules with one job per sample of the demo sheet (config/samples.tsv: 3 + 3 animals).
PER_SAMPLE = ("ingest_sample", "species_assign", "qc_filter", "qc_plots")
#: Rules with exactly one job.
ONCE = (
    "all", "demo_simulate", "qc_summary", "integrate_merge", "integrate_scvi",
    "integrate_metrics", "cluster_leiden", "annotate_cells", "de_pseudobulk",
    "composition_test", "gsea_prerank", "figures_umap", "figures_stats", "provenance",
)  # fmt: skip
GENES = ["Gas6", "Axl"]
PANEL = REPO / "config" / "markers" / "mouse_tme.yaml"
GENE_SETS = REPO / "config" / "genesets" / "mh.all.v2023.1.Mm.symbols.gmt"


def _host(folder: Path, config: dict) -> Path:
    """A host workflow in ``folder`` that imports tmeflow as a module (README's snippet)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (folder / "Snakefile").write_text(
        'configfile: "config.yaml"\n\n\n'
        "module tmeflow:\n"
        f'    snakefile:\n        "{REPO / "workflow" / "Snakefile"}"\n'
        "    config:\n        config\n\n\n"
        "use rule * from tmeflow as tmeflow_*\n"
    )
    return folder


def _dry_run(folder: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "1"],
        cwd=folder, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    return out


BASE = {
    # the shipped demo sheet; its paths (resources/demo/...) are relative to the working
    # directory, where the module's demo rule writes them
    "samples": str(REPO / "config" / "samples.tsv"),
    "species": "xenograft",
    "contrast": {"column": "condition", "reference": "control", "test": "alectinib"},
    "genes_of_interest": GENES,
    "seed": 0,
}


@pytest.mark.parametrize(
    "reference_paths",
    [
        pytest.param(
            {
                "annotation": {"panel": str(PANEL)},
                "gsea": {"gene_sets": [str(GENE_SETS)]},
            },
            id="absolute-paths",
        ),
        pytest.param({}, id="schema-defaults"),
    ],
)
def test_module_dry_run_from_another_folder(tmp_path, reference_paths):
    host = _host(tmp_path / "host", {**BASE, **reference_paths})
    out = _dry_run(host)
    jobs = dry_run_jobs(out)
    assert jobs, out[-3000:]
    assert all(name.startswith("tmeflow_") for name in jobs), sorted(jobs)
    for rule in PER_SAMPLE:
        assert jobs.get(f"tmeflow_{rule}") == 6, (rule, jobs)
    for rule in ONCE:
        assert jobs.get(f"tmeflow_{rule}") == 1, (rule, jobs)
    assert jobs.get("tmeflow_sources_gene") == len(GENES), jobs
    # The shipped panel and gene sets (and the demo's gene pool) are read from the clone.
    assert str(PANEL) in out and str(GENE_SETS) in out, out[-3000:]
    # Outputs are relative to the host's working directory.
    assert "output: results/provenance.json" in out, out[-3000:]
