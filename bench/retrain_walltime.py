"""Wall time of the demo with and without the retraining settings (issue 28), back to back.

In scratch clones of the repository's committed state (``--commit``: another commit, e.g. the
one before the retraining settings, run with ``--only false``): the demo data are
made once (untimed), then the whole workflow runs (``snakemake --cores N``, timed) with
``sensitivity.retrain.enabled: false`` and again, in a fresh copy, with the shipped
retraining settings. Prints both wall times, the added time and each ``sensitivity_retrain``
job's seconds (its benchmark file), and appends a row per run to ``bench/retrain_walltime.tsv``.

Not a test (about a quarter of an hour on 2 cores). Run it on a quiet machine:

    .venv/bin/python bench/retrain_walltime.py --cores 2
    .venv/bin/python bench/retrain_walltime.py --cores 2 --commit 4db670d --only false
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]


def clone(dest: Path, commit: str) -> Path:
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", commit], check=True)
    return dest


def run(work: Path, overrides: dict, cores: int, log: Path) -> float:
    cfg = work / "bench.yaml"
    cfg.write_text(yaml.safe_dump(overrides, sort_keys=False))
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", str(cfg)]
    start = time.monotonic()
    with log.open("w") as fh:
        done = subprocess.run(cmd, cwd=work, stdout=fh, stderr=subprocess.STDOUT, check=False)
    wall = time.monotonic() - start
    if done.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{log.read_text()[-4000:]}")
    return wall


def retrain_jobs(work: Path) -> dict[str, float]:
    out = {}
    for path in sorted((work / "benchmarks" / "sensitivity_retrain").glob("*.tsv")):
        out[path.stem] = float(pd.read_csv(path, sep="\t")["s"].iloc[0])
    return out


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--commit", default="HEAD", help="commit to time")
    parser.add_argument("--only", choices=["false", "true"], default=None)
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "retrain_walltime.tsv")
    args = parser.parse_args(argv)

    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="tmeflow-retrain-"))
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", args.commit],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    rows = []
    for enabled in (False, True):
        if args.only is not None and str(enabled).lower() != args.only:
            continue
        work = clone(scratch / f"retrain_{enabled}", commit)
        subprocess.run(
            [sys.executable, "-m", "snakemake", "--cores", str(args.cores), "demo_simulate"],
            cwd=work, check=True, capture_output=True,
        )  # fmt: skip
        load = os.getloadavg()[0]
        overrides = {} if enabled else {"sensitivity": {"retrain": {"enabled": False}}}
        schema = yaml.safe_load((work / "workflow/schemas/config.schema.yaml").read_text())
        if "retrain" not in schema["properties"]["sensitivity"]["properties"]:
            overrides = {}  # a commit before the retraining settings
        wall = run(work, overrides, args.cores, scratch / f"retrain_{enabled}.log")
        jobs = retrain_jobs(work)
        row = {
            "date": time.strftime("%Y-%m-%d"),
            "commit": commit,
            "retrain": enabled,
            "cores": args.cores,
            "load_before": round(load, 2),
            "workflow_s": round(wall, 1),
            "retrain_jobs_s": " ".join(f"{k}={v:.0f}" for k, v in jobs.items()) or "-",
            "load_after": round(os.getloadavg()[0], 2),
        }
        rows.append(row)
        print("\t".join(f"{k}={v}" for k, v in row.items()), flush=True)
        shutil.rmtree(work / "results", ignore_errors=True)
    table = pd.read_csv(args.out, sep="\t") if args.out.exists() else pd.DataFrame()
    pd.concat([table, pd.DataFrame(rows)]).to_csv(args.out, sep="\t", index=False)


if __name__ == "__main__":
    main()
