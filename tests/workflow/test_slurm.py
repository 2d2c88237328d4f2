"""The small demo through profiles/slurm on a real one-node SLURM cluster started here.

The session's ``fresh_run`` (tests/workflow/conftest.py) runs the whole small demo through
``--profile profiles/slurm --profile tests/slurm/profile``: the default, CPU-only cluster
profile (no GPU request, so scVI trains on the CPU) plus the test cluster's site settings
(status via squeue, no account, 2 CPUs, one CPU per job). ``test_reproducibility`` compares its
outputs with the local ``demo_run`` byte for byte; this module checks that the jobs really went
through SLURM. It is opt-in: SLURM is tried only with ``TMEFLOW_SLURM=1`` (``make test-slurm``;
``.ci/run``), since as root it apt-installs slurm-wlm + munge and starts daemons. Where it was
not asked for or cannot be started here (not root, no apt, install failure, a daemon that does
not come up; see tests/workflow/slurm_cluster.py) ``fresh_run`` runs locally with
``--cores 1`` and this module is skipped with the reason. ``make test`` deselects it with
``-m "not slurm"`` (``fresh_run`` then still runs, locally, for the comparison).
"""

import h5py
import pytest

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]


@pytest.fixture(scope="module")
def slurm_run(fresh_run):
    if fresh_run["executor"] != "slurm":
        pytest.skip(f"no SLURM here; the fresh run was local: {fresh_run['why_local']}")
    return fresh_run["work"]


def test_every_job_went_through_sbatch(slurm_run):
    # The executor keeps a SLURM log folder per rule (slurm-keep-successful-logs).
    rule_dirs = {p.name for p in (slurm_run / ".snakemake" / "slurm_logs").glob("rule_*")}
    assert {"rule_integrate_scvi", "rule_de_pseudobulk", "rule_qc_filter"} <= rule_dirs
    assert {"rule_figures_umap", "rule_confirmatory_test"} <= rule_dirs


def test_scvi_trained_on_the_cpu_without_a_gpu_request(slurm_run):
    # profiles/slurm asks for no GPU (opt-in: profiles/slurm-gpu): accelerator auto -> cpu
    with h5py.File(slurm_run / "results/integrate/integrated.h5ad", "r") as f:
        accelerator = f["uns/scvi/accelerator"][()]
    assert (accelerator.decode() if isinstance(accelerator, bytes) else accelerator) == "cpu"
