"""Scaling benchmark: the whole workflow on simulated data of growing size.

For each total cell number (6 samples, the demo generator's ``demo.cells_per_sample``), copies
the workflow into a scratch folder, runs Snakemake on ``--cores`` cores and records, per rule,
the wall time and peak resident memory (Snakemake's ``benchmark:`` files where the rule has one,
otherwise this script's own sampling of the job's process tree with psutil), the whole run's
wall time and peak RSS, and the CSR size of the merged counts matrix. Optionally re-runs after a
DE-only parameter change and reports its time as a fraction of the full run.

Not a test: it takes minutes to hours. Run it niced on a shared machine::

    nice -n 10 .venv/bin/python bench/scaling.py --cells 10000 50000 100000

Rows are merged into ``bench/scaling.tsv`` (same cells + rule replaced), with the machine
described in its header.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import h5py
import pandas as pd
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from tests.workflow.helpers import copy_workflow  # noqa: E402  (the tests' copy of a clone)

N_SAMPLES = 6  # 3 control + 3 alectinib animals (demo.n_replicates = 3)
COLUMNS = [
    "n_cells",
    "rule",
    "n_jobs",
    "wall_s",
    "peak_rss_mb",
    "source",
    "counts_csr_mb",
    "rss_over_csr",
    "import_rss_mb",
    "net_over_csr",
    "scvi_max_epochs",
    "cores",
]
#: The DE-only change used for the incremental re-run (must not touch upstream rules).
RERUN_CHANGE = {"de": {"alpha": 0.1, "min_cells": 12}}
#: What a job's interpreter holds before it reads any data: the libraries every adapter imports
#: and, for the rules that train or load scVI, torch + scvi-tools too. ``net_over_csr`` is
#: (peak RSS - this) / CSR: what the job's data cost, which is what must scale (at 10k cells the
#: imports alone are several times the counts).
_CORE_IMPORTS = "import anndata, scanpy, pandas, scipy.sparse, matplotlib.pyplot, tmeflow"
IMPORTS = {"core": _CORE_IMPORTS, "scvi": f"{_CORE_IMPORTS}, scvi, torch"}
SCVI_RULES = ("integrate_scvi",)
SCRIPT_RE = re.compile(r"\.snakemake/scripts/tmp[^/\s]*?\.([A-Za-z0-9_]+)\.py")


def machine() -> str:
    """One line describing the machine the benchmark ran on."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = psutil.virtual_memory().total / 2**30
    return (
        f"{platform.node()}; {cpu}; {psutil.cpu_count()} CPUs; {mem:.1f} GiB RAM; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}"
    )


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class TreeSampler:
    """Samples the RSS of a process tree; attributes Snakemake script jobs to their rule."""

    def __init__(self, root_pid: int, interval: float = 0.25):
        self.root = psutil.Process(root_pid)
        self.interval = interval
        self.peak_total = 0
        self.jobs: dict[int, dict] = {}  # pid -> {rule, start, end, peak}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> TreeSampler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _rss(self, proc: psutil.Process) -> int:
        try:
            return proc.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                break
            total = 0
            seen = set()
            for proc in procs:
                total += self._rss(proc)
                try:
                    cmd = " ".join(proc.cmdline())
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue
                match = SCRIPT_RE.search(cmd)
                if not match or "python" not in cmd.split()[0]:
                    continue
                seen.add(proc.pid)
                try:
                    tree = [proc, *proc.children(recursive=True)]
                except psutil.NoSuchProcess:
                    continue
                rss = sum(self._rss(p) for p in tree)
                job = self.jobs.setdefault(
                    proc.pid, {"rule": match.group(1), "start": now, "end": now, "peak": 0}
                )
                job["end"] = now
                job["peak"] = max(job["peak"], rss)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.interval)

    def per_rule(self) -> pd.DataFrame:
        rows = [
            {"rule": j["rule"], "wall_s": j["end"] - j["start"], "peak": j["peak"] / 2**20}
            for j in self.jobs.values()
        ]
        if not rows:
            return pd.DataFrame(columns=["rule", "n_jobs", "wall_s", "peak_rss_mb"])
        df = pd.DataFrame(rows)
        return df.groupby("rule").agg(
            n_jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), peak_rss_mb=("peak", "max")
        )


def run_snakemake(work: Path, cfg: Path, cores: int, extra: tuple[str, ...] = ()) -> tuple:
    """Run Snakemake; return (wall seconds, peak tree RSS MB, per-rule sampled frame)."""
    cmd = [sys.executable, "-m", "snakemake", "--cores", str(cores), "--configfile", str(cfg)]
    cmd += list(extra)
    log = (work / "bench_snakemake.log").open("a")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT)
    sampler = TreeSampler(proc.pid).start()
    rc = proc.wait()
    wall = time.monotonic() - start
    sampler.stop()
    log.close()
    if rc != 0:
        tail = (work / "bench_snakemake.log").read_text()[-4000:]
        raise RuntimeError(f"snakemake failed ({rc}) in {work}:\n{tail}")
    return wall, sampler.peak_total / 2**20, sampler.per_rule()


def benchmark_files(work: Path) -> pd.DataFrame:
    """Snakemake's benchmark: files, summed (wall) / maxed (RSS) per rule."""
    rows = []
    for path in sorted((work / "benchmarks").rglob("*.tsv")):
        rule = path.relative_to(work / "benchmarks").parts[0]
        table = pd.read_csv(path, sep="\t")
        rss = pd.to_numeric(table["max_rss"], errors="coerce").max()
        rows.append({"rule": rule, "wall_s": float(table["s"].iloc[-1]), "peak_rss_mb": rss})
    if not rows:
        return pd.DataFrame(columns=["n_jobs", "wall_s", "peak_rss_mb"])
    df = pd.DataFrame(rows)
    return df.groupby("rule").agg(
        n_jobs=("wall_s", "size"), wall_s=("wall_s", "sum"), peak_rss_mb=("peak_rss_mb", "max")
    )


def counts_csr_mb(h5ad: Path) -> tuple[float, int, int]:
    """Bytes of data + indices + indptr of the merged raw counts (layers/counts), MB; shape.

    Read from integrated.h5ad: merged.h5ad is temp() and holds the same counts.
    """
    with h5py.File(h5ad, "r") as f:
        group = f["layers/counts"] if "layers/counts" in f else f["X"]
        size = sum(group[k].size * group[k].dtype.itemsize for k in ("data", "indices", "indptr"))
        shape = tuple(int(v) for v in group.attrs["shape"])
    return size / 2**20, shape[0], shape[1]


def dry_run_jobs(work: Path, cfg: Path) -> list[str]:
    """Rules Snakemake would run (dry run, summary of the job counts)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile", str(cfg)]
    out = subprocess.run(cmd, cwd=work, capture_output=True, text=True, check=True).stdout
    return parse_job_stats(out)


def import_rss_mb() -> dict[str, float]:
    """Peak RSS (MB) of a fresh interpreter after each :data:`IMPORTS` line."""
    out = {}
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow" / "scripts")}
    for name, imports in IMPORTS.items():
        peak = "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss"
        code = f"{imports}; import resource; print({peak})"
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
        )
        out[name] = int(res.stdout.split()[-1]) / 1024  # ru_maxrss is in KiB on Linux
    return out


def add_ratios(row: dict, csr_mb: float, imports: dict[str, float]) -> dict:
    """``rss_over_csr``, ``import_rss_mb`` and ``net_over_csr`` of one row."""
    base = (
        0.0
        if row["rule"] in ("TOTAL", "RERUN_DE_PARAMS")
        else imports["scvi" if row["rule"] in SCVI_RULES else "core"]
    )
    ok = bool(csr_mb)
    row["rss_over_csr"] = round(row["peak_rss_mb"] / csr_mb, 2) if ok else float("nan")
    row["import_rss_mb"] = round(base, 1)
    net = max(row["peak_rss_mb"] - base, 0.0)
    row["net_over_csr"] = round(net / csr_mb, 2) if ok else float("nan")
    return row


def parse_job_stats(text: str) -> list[str]:
    """Rule names from Snakemake's first 'Job stats' table (one per job), 'all' excluded."""
    rules = []
    in_table = False
    for line in text.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
            continue
        if in_table:
            if len(parts) == 2 and parts[1].isdigit():
                if parts[0] == "total":  # a dry run prints the table twice: keep the first
                    break
                if parts[0] != "all":
                    rules += [parts[0]] * int(parts[1])
            elif parts and not set(line.strip()) <= {"-", " "}:
                in_table = False
    return rules


def bench_one(n_cells: int, args, scratch: Path) -> list[dict]:
    work = scratch / f"cells_{n_cells}"
    resumed = args.resume and work.is_dir()
    if resumed:
        # a kept run stopped part-way: the jobs done keep their benchmark files; TOTAL's wall
        # then covers only what runs now
        print(f"== resuming the run in {work}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "snakemake", "--unlock", "--configfile", "bench.yaml"],
            cwd=work, check=True, capture_output=True,
        )  # fmt: skip
    else:
        work = copy_workflow(work)
    base = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    over = {"demo": {"cells_per_sample": n_cells // N_SAMPLES, "n_replicates": N_SAMPLES // 2}}
    if args.max_epochs:
        over["scvi"] = {"max_epochs": args.max_epochs}
    cfg = work / "bench.yaml"
    cfg.write_text(yaml.safe_dump(over, sort_keys=False))
    epochs = over.get("scvi", {}).get("max_epochs", base["scvi"]["max_epochs"])
    print(f"== {n_cells} cells in {work} (scVI max_epochs {epochs})", flush=True)

    wall, peak, sampled = run_snakemake(work, cfg, args.cores)
    bench = benchmark_files(work)
    csr_mb, n_obs, n_vars = counts_csr_mb(work / "results" / "integrate" / "integrated.h5ad")
    rows = []
    for rule in sorted(set(sampled.index) | set(bench.index)):
        # wall time from the benchmark file where there is one; peak RSS = the higher of the
        # two samplers (Snakemake's benchmark polls less often and can miss short peaks)
        rec = bench.loc[rule] if rule in bench.index else sampled.loc[rule]
        rss = [float(t.loc[rule, "peak_rss_mb"]) for t in (bench, sampled) if rule in t.index]
        rows.append(
            {
                "rule": rule,
                "n_jobs": int(rec["n_jobs"]),
                "wall_s": float(rec["wall_s"]),
                "peak_rss_mb": max(rss),
                "source": "benchmark+psutil" if len(rss) == 2 else
                ("benchmark" if rule in bench.index else "psutil"),
            }
        )  # fmt: skip
    rows.append(
        {"rule": "TOTAL", "n_jobs": sum(r["n_jobs"] for r in rows), "wall_s": wall,
         "peak_rss_mb": peak, "source": "psutil, resumed" if resumed else "psutil"}
    )  # fmt: skip

    if args.rerun:
        cfg2 = work / "bench_rerun.yaml"
        cfg2.write_text(yaml.safe_dump(merge(over, RERUN_CHANGE), sort_keys=False))
        jobs = dry_run_jobs(work, cfg2)
        print(f"   re-run after {RERUN_CHANGE}: {len(jobs)} jobs {sorted(set(jobs))}", flush=True)
        wall2, peak2, _ = run_snakemake(work, cfg2, args.cores)
        rows.append(
            {"rule": "RERUN_DE_PARAMS", "n_jobs": len(jobs), "wall_s": wall2,
             "peak_rss_mb": peak2, "source": "psutil"}
        )  # fmt: skip
        print(f"   re-run {wall2:.1f} s = {wall2 / wall:.3f} of the full run", flush=True)

    imports = import_rss_mb()
    for row in rows:
        row.update(n_cells=n_cells, counts_csr_mb=round(csr_mb, 2))
        row.update(scvi_max_epochs=epochs, cores=args.cores)
        row["wall_s"] = round(row["wall_s"], 1)
        row["peak_rss_mb"] = round(row["peak_rss_mb"], 1)
        add_ratios(row, csr_mb, imports)
    print(f"   merged counts: {n_obs} cells x {n_vars} genes, CSR {csr_mb:.1f} MB", flush=True)
    print(pd.DataFrame(rows)[COLUMNS].to_string(index=False), flush=True)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return rows


def save(rows: list[dict], out: Path) -> None:
    """Merge rows into ``out`` (replacing same n_cells + rule) with the machine in the header."""
    new = pd.DataFrame(rows)[COLUMNS]
    if out.exists():
        old = pd.read_csv(out, sep="\t", comment="#")
        keep = ~old.set_index(["n_cells", "rule"]).index.isin(
            new.set_index(["n_cells", "rule"]).index
        )
        new = pd.concat([old[keep], new], ignore_index=True)
    new = new.sort_values(["n_cells", "rule"], kind="stable")
    header = (
        "# tmeflow scaling benchmark (bench/scaling.py); wall_s and peak_rss_mb per rule (summed "
        "wall over its jobs, max RSS of one job), TOTAL = whole run (peak = all concurrent "
        "jobs + Snakemake), RERUN_DE_PARAMS = re-run after changing only de.alpha/de.min_cells; "
        "import_rss_mb = a fresh interpreter after the job's imports (scvi + torch for "
        "integrate_scvi), net_over_csr = (peak_rss_mb - import_rss_mb) / counts_csr_mb\n"
        f"# machine: {machine()}\n"
    )
    out.write_text(header + new.to_csv(sep="\t", index=False))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, nargs="+", default=[10000, 50000, 100000])
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument(
        "--max-epochs", type=int, default=0, help="cap scvi.max_epochs (0: config default)"
    )
    parser.add_argument("--no-rerun", dest="rerun", action="store_false")
    parser.add_argument("--keep", action="store_true", help="keep the scratch run folders")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue a run kept in --scratch (TOTAL's wall is then the resumed part only)",
    )
    parser.add_argument("--scratch", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "scaling.tsv")
    args = parser.parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    scratch = args.scratch or Path(tempfile.mkdtemp(prefix="tmeflow-bench-"))
    print(f"machine: {machine()}", flush=True)
    for n in args.cells:
        rows = bench_one(n, args, scratch)
        save(rows, args.out)


if __name__ == "__main__":
    main()
