# Validation of config and sample sheet, input functions and constraints. No rules here.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow" / "scripts"))

from tmeflow import config as tmc  # noqa: E402
from tmeflow.simulate import demo_layout, demo_outputs  # noqa: E402

SCHEMAS = Path(workflow.basedir) / "workflow" / "schemas"
ENVS = "../../envs/tmeflow.yaml"
DEMO_DIR = "resources/demo"

tmc.validate_config(config, SCHEMAS / "config.schema.yaml")

DEMO_OUTPUTS = [
    f"{DEMO_DIR}/{p}"
    for p in demo_outputs(
        n_replicates=config["demo"]["n_replicates"],
        conditions=(config["contrast"]["reference"], config["contrast"]["test"]),
    )
]

SAMPLES = tmc.validate_sample_sheet(
    tmc.read_sample_sheet(config["samples"]),
    SCHEMAS / "samples.schema.yaml",
    contrast=config["contrast"],
    covariates=config["de"]["covariates"],
    sheet_path=config["samples"],
    producible=DEMO_OUTPUTS,
)
SAMPLE_IDS = list(SAMPLES["sample"])
EXTRA_COLUMNS = [
    c for c in SAMPLES.columns if c not in ("sample", "path", "sha256", "format")
]
GENES = list(config["genes_of_interest"])


wildcard_constraints:
    sample="|".join(SAMPLE_IDS),
    gene="|".join(GENES) if GENES else "NONE",


def ingest_input(wildcards):
    """The file(s) a sample's ingest job depends on: a file, or a 10x mtx folder's files."""
    path = SAMPLES.loc[wildcards.sample, "path"]
    folder = Path(path)
    if folder.is_dir():
        return tmc.mtx_files(folder)
    prefix = str(folder) + "/"
    inside = [p for p in DEMO_OUTPUTS if p.startswith(prefix)]
    return inside or [path]


def sample_meta(wildcards):
    row = SAMPLES.loc[wildcards.sample]
    return {c: row[c] for c in EXTRA_COLUMNS if c != "condition"}


def sample_format(wildcards):
    fmt = SAMPLES.loc[wildcards.sample].get("format", "")
    return fmt or None


def mem_mb_for(base_mb, per_input_mb=10):
    """Memory in MB sized from the job's input size: base + per_input_mb per MB of input."""

    def _mem(wildcards, input, attempt):
        size_mb = sum(Path(f).stat().st_size for f in input if Path(f).exists()) / 1e6
        return int((base_mb + per_input_mb * size_mb) * attempt)

    return _mem


# Final targets: each stage's rule file appends what `rule all` must build.
FINAL_TARGETS = []
