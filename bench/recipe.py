"""tmeflow against the plain recipe a user would write, on the same sample sheet, back to back.

In a scratch copy of the repository: the demo data are made first (untimed, when the sheet is
the demo's), then the whole workflow runs (``snakemake --cores N``, timed), then
``bench/plain_recipe.py`` (scanpy QC, Scrublet, seurat_v3 HVGs, scVI with scvi-tools' default
epochs, Leiden, UMAP, Wilcoxon markers; timed) on the same sheet with the same threads. Prints
both wall times, their ratio (the goal is <= 0.5) and scVI's seconds per epoch in each (median
over epochs 2..n, from the workflow's epoch log and the recipe's own timing), and appends a row
to ``bench/recipe.tsv``.

Not a test (minutes to hours). On a shared machine the load average is printed with the times:

    nice -n 10 .venv/bin/python bench/recipe.py --cores 2
    nice -n 10 .venv/bin/python bench/recipe.py --cores 2 --set demo.cells_per_sample=700
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.workflow.helpers import copy_workflow  # noqa: E402  (the tests' copy of a clone)

EPOCH_RE = re.compile(r"scVI epoch (\d+)/\d+: .*?, ([0-9.]+) s, about")
RECIPE_RE = re.compile(r"([0-9.]+) s/epoch\), total ([0-9.]+) s")


def overrides(pairs: list[str]) -> dict:
    """``a.b=value`` pairs (YAML values) as a nested dict."""
    out: dict = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        node = out
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return out


def timed(cmd: list[str], cwd: Path, log: Path) -> float:
    """Run ``cmd`` into ``log``; wall seconds (raises with the log's tail on failure)."""
    start = time.monotonic()
    with log.open("w") as fh:
        rc = subprocess.run(cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - start
    if rc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read_text()[-4000:]}")
    return wall


def epoch_seconds(log_text: str) -> float:
    """Median seconds per scVI epoch after the first (which includes set-up)."""
    secs = [float(s) for n, s in EPOCH_RE.findall(log_text) if int(n) > 1]
    return statistics.median(secs) if secs else float("nan")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], help="config overrides, a.b=value")
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "recipe.tsv")
    args = parser.parse_args(argv)

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="tmeflow-recipe-"))
    work = copy_workflow(scratch / "workflow")
    cfg = work / "bench.yaml"
    cfg.write_text(yaml.safe_dump(overrides(args.set), sort_keys=False))
    snake = [sys.executable, "-m", "snakemake", "--cores", str(args.cores)]
    config = yaml.safe_load((work / "config" / "config.yaml").read_text())
    sheet = work / config["samples"]
    if "resources/demo" in sheet.read_text():
        timed([*snake, "demo_simulate", "--configfile", str(cfg)], work, scratch / "demo.log")
    load = os.getloadavg()[0]
    wf = timed([*snake, "--configfile", str(cfg)], work, scratch / "workflow.log")
    scvi_log = (work / "logs" / "integrate_scvi" / "integrate_scvi.log").read_text()
    wf_epoch = epoch_seconds(scvi_log)
    recipe_cmd = [sys.executable, str(REPO / "bench" / "plain_recipe.py"), str(sheet),
                  str(scratch / "recipe.h5ad"), "--threads", str(args.cores)]  # fmt: skip
    rc = timed(recipe_cmd, work, scratch / "recipe.log")
    found = RECIPE_RE.search((scratch / "recipe.log").read_text())
    rc_epoch = float(found.group(1)) if found else float("nan")
    row = {
        "date": time.strftime("%Y-%m-%d"),
        "overrides": " ".join(args.set) or "-",
        "cores": args.cores,
        "load_before": round(load, 2),
        "workflow_s": round(wf, 1),
        "recipe_s": round(rc, 1),
        "ratio": round(wf / rc, 3),
        "scvi_s_per_epoch_workflow": round(wf_epoch, 3),
        "scvi_s_per_epoch_recipe": round(rc_epoch, 3),
        "scvi_epoch_ratio": round(wf_epoch / rc_epoch, 3),
        "load_after": round(os.getloadavg()[0], 2),
    }
    print("\n".join(f"{k}\t{v}" for k, v in row.items()), flush=True)
    table = pd.read_csv(args.out, sep="\t") if args.out.exists() else pd.DataFrame()
    pd.concat([table, pd.DataFrame([row])]).to_csv(args.out, sep="\t", index=False)


if __name__ == "__main__":
    main()
