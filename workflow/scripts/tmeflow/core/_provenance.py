"""A record of exactly what ran: ``results/provenance.json`` (+ ``provenance_times.json``).

``provenance.json`` depends only on what was run, never on when: the workflow version
(``git describe --always --dirty``, ``"unknown"`` outside git), the Python and package versions,
the configuration as run (defaults filled in), the sha256 of every input matrix file and every
seed. Two runs of the same workflow version on the same inputs with the same config and
environment write the same bytes. Wall-clock times go to a separate file
(:func:`run_times`), which the reproducibility tests leave out of the byte comparison.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

#: Distributions whose versions decide the numbers and pictures (the pinned lock's key entries).
KEY_PACKAGES: tuple[str, ...] = (
    "snakemake",
    "anndata",
    "scanpy",
    "scvi-tools",
    "torch",
    "lightning",
    "pydeseq2",
    "leidenalg",
    "igraph",
    "umap-learn",
    "pynndescent",
    "scikit-learn",
    "scikit-misc",
    "statsmodels",
    "gseapy",
    "numba",
    "numpy",
    "scipy",
    "pandas",
    "h5py",
    "matplotlib",
    "jsonschema",
    "PyYAML",
)

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def input_digests(paths: Iterable[str | os.PathLike[str]]) -> dict[str, str]:
    """``{path: sha256}`` for every input file, sorted by path.

    A folder (e.g. a 10x mtx folder given as one input) contributes each file inside it,
    recursively, under its own path.

    Raises
    ------
    FileNotFoundError
        When an input is missing (the provenance record must cover every input).
    """
    files: set[str] = set()
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files.update(str(f) for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            files.add(str(p))
        else:
            msg = f"input {os.fspath(p)!r} not found; it cannot be hashed for provenance."
            raise FileNotFoundError(msg)
    return {f: sha256_file(f) for f in sorted(files)}


def package_versions(names: Iterable[str] = KEY_PACKAGES) -> dict[str, str | None]:
    """Installed version of each distribution (``None`` when not installed), sorted by name."""
    out: dict[str, str | None] = {}
    for name in sorted(names, key=str.lower):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def workflow_version(repo_dir: str | os.PathLike[str]) -> str:
    """``git describe --always --dirty`` of ``repo_dir``; ``"unknown"`` outside a git clone.

    Only a clone whose top level *is* ``repo_dir`` counts: a copy of the workflow lying
    inside some other repository (an analysis project) is ``"unknown"``, not that repository's
    version.
    """
    repo = Path(repo_dir).resolve()
    try:
        top = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        if not top or Path(top).resolve() != repo:
            return "unknown"
        described = subprocess.run(
            ["git", "-C", str(repo), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return described or "unknown"


def find_seeds(config: Mapping[str, Any], prefix: str = "") -> dict[str, int]:
    """Every key named ``seed`` or ending in ``_seed`` in ``config``, by dotted key path."""
    seeds: dict[str, int] = {}
    for key, value in config.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            seeds.update(find_seeds(value, prefix=f"{path}."))
        elif (key == "seed" or str(key).endswith("_seed")) and isinstance(value, int):
            seeds[path] = value
    return dict(sorted(seeds.items()))


def _plain(value: Any) -> Any:
    """A JSON-safe copy (Snakemake hands over its own Namedlist/dict subclasses)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_plain(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def build_provenance(
    *,
    config: Mapping[str, Any],
    inputs: Iterable[str | os.PathLike[str]],
    repo_dir: str | os.PathLike[str],
    packages: Iterable[str] = KEY_PACKAGES,
    fallbacks: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The provenance record: nothing in it depends on the time of the run.

    Keys: ``workflow`` (``version`` from git, ``tmeflow`` package version), ``python``,
    ``platform``, ``packages``, ``config`` (as run), ``seeds``, ``inputs`` (path -> sha256),
    and ``fallbacks`` when given: the steps that did not run as configured (see
    :func:`hvg_fallbacks`), so a reader sees which method produced the results.
    """
    from tmeflow import __version__

    record = {
        "workflow": {"version": workflow_version(repo_dir), "tmeflow": __version__},
        "python": platform.python_version(),
        "platform": {"system": platform.system(), "machine": platform.machine()},
        "packages": package_versions(packages),
        "config": _plain(config),
        "seeds": find_seeds(config),
        "inputs": input_digests(inputs),
    }
    if fallbacks is not None:
        record["fallbacks"] = _plain(fallbacks)
    return record


def hvg_fallbacks(table: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The HVG fits that left the first step of the chain, from ``results/integrate/hvg.tsv``.

    Parameters
    ----------
    table
        The table of :func:`tmeflow.embed.hvg_table`.

    Returns
    -------
    list of dict
        ``species``, ``batch``, ``step`` and ``failed`` of every fit whose step is not
        ``seurat_v3``, in table order; empty when every fit worked as configured.
    """
    import pandas as pd

    df = pd.read_csv(table, sep="\t", keep_default_na=False)
    df = df[df["step"].astype(str) != "seurat_v3"]
    return [
        {k: str(row[k]) for k in ("species", "batch", "step", "failed")} for _, row in df.iterrows()
    ]


def _iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, tz=dt.UTC).isoformat(timespec="seconds")


def _number(text: str) -> float | None:
    """A benchmark cell as a number (``NA``, ``-`` and other non-numbers: ``None``)."""
    try:
        return float(text)
    except ValueError:
        return None


def read_benchmark(path: str | os.PathLike[str]) -> dict[str, float | None] | None:
    """One Snakemake ``benchmark:`` TSV as ``{column: value}``; ``None`` without a data row.

    Columns as Snakemake writes them (``s``, ``max_rss``, ``max_vms``, ``max_uss``,
    ``max_pss``, ``io_in``, ``io_out``, ``mean_load``, ``cpu_time``; memory in MB), numbers or
    ``None`` for ``NA``; ``h:m:s`` is left out (it repeats ``s``). A ``repeat()`` benchmark's
    rows are combined: ``s`` and ``cpu_time`` summed, the rest their maximum, ``repeats`` added.
    """
    try:
        lines = [ln for ln in Path(path).read_text().splitlines() if ln.strip()]
    except (OSError, UnicodeDecodeError):
        return None
    if len(lines) < 2:
        return None
    header = lines[0].split("\t")
    rows = [dict(zip(header, ln.split("\t"), strict=False)) for ln in lines[1:]]
    record: dict[str, float | None] = {}
    for col in header:
        if col == "h:m:s":
            continue
        values = [v for v in (_number(r.get(col, "")) for r in rows) if v is not None]
        if not values:
            record[col] = None
        elif col in {"s", "cpu_time"}:
            record[col] = round(sum(values), 2)
        else:
            record[col] = max(values)
    if len(rows) > 1:
        record["repeats"] = len(rows)
    return record if record.get("s") is not None else None


def run_times(
    outputs: Iterable[str],
    *,
    benchmark_dir: str | os.PathLike[str] = "benchmarks",
    now: float | None = None,
) -> dict[str, Any]:
    """Wall-clock times and peak memory of the run, kept out of ``provenance.json``.

    Read from the rules' ``benchmark:`` files (``benchmarks/<rule>/...tsv``), not from
    Snakemake's private job records. Keys (times UTC ISO 8601):

    ``jobs``
        Benchmark file -> ``rule`` (the folder under ``benchmark_dir``), ``start`` (the file's
        modification time minus ``s``), ``end`` (its modification time) and the numbers of
        :func:`read_benchmark` (``s``, ``max_rss`` in MB, ``cpu_time``, ...). Every benchmark
        file present counts, including one left by an earlier run.
    ``outputs``
        Each file among ``outputs`` -> ``modified`` (folders and missing paths are skipped).
    ``start``, ``end``
        The earliest start and the latest end over ``jobs`` and the outputs' times.
    ``recorded``
        When this record was written (``now``).
    """
    now = dt.datetime.now(tz=dt.UTC).timestamp() if now is None else now
    bdir = Path(benchmark_dir)
    jobs: dict[str, dict[str, Any]] = {}
    spans: list[tuple[float, float]] = []
    for f in sorted(bdir.rglob("*.tsv")) if bdir.is_dir() else []:
        bench = read_benchmark(f)
        if bench is None:
            continue
        end = f.stat().st_mtime
        start = end - float(bench["s"] or 0.0)
        spans.append((start, end))
        parts = f.relative_to(bdir).parts
        rule = parts[0] if len(parts) > 1 else f.stem
        jobs[str(f)] = {"rule": rule, "start": _iso(start), "end": _iso(end), **bench}
    files: dict[str, dict[str, str]] = {}
    for out in sorted(set(outputs)):
        if Path(out).is_file():
            mtime = Path(out).stat().st_mtime
            spans.append((mtime, mtime))
            files[out] = {"modified": _iso(mtime)}
    return {
        "start": _iso(min(s for s, _ in spans)) if spans else None,
        "end": _iso(max(e for _, e in spans)) if spans else None,
        "recorded": _iso(now),
        "jobs": jobs,
        "outputs": files,
    }


def present_outputs(
    results: str | os.PathLike[str], skip: Iterable[str | os.PathLike[str]] = ()
) -> list[str]:
    """Every file and folder under ``results``, for :func:`run_times` (files: their times).

    Parameters
    ----------
    results
        The results folder.
    skip
        Paths left out (the provenance files themselves).

    Returns
    -------
    list of str
        The paths, sorted, without ``skip`` and without temporary files (``.tmp`` in the name).
    """
    left_out = {str(Path(f)) for f in skip}
    return sorted(
        str(f) for f in Path(results).rglob("*") if str(f) not in left_out and ".tmp" not in f.name
    )


def write_json(record: Mapping[str, Any], path: str | os.PathLike[str]) -> None:
    """Write ``record`` as sorted, indented JSON with a final newline, atomically."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(record, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(p)
