"""The suite's long workflow runs, started in the background as soon as the tests are collected.

A whole workflow run takes minutes and keeps about one of a machine's cores busy (most jobs are
one process at a time, and many wait on their inputs). Each such session or module fixture
registers its *builder* here with :func:`register`; when collection ends
(``pytest_collection_finish`` in ``tests/workflow/conftest.py``), the builders that the selected
tests need are submitted, longest first, to a pool of :data:`WORKERS` threads (each builder is
mostly a Snakemake subprocess, so threads suffice), and the fixture only waits for its result
(:func:`result`). The unit tests run meanwhile in the main thread.

- Every run's code is copied from the repository at submission, in the main thread, so all runs
  of a session use the same code even when the repository changes while the tests run.
- A builder that fails or skips (``pytest.skip``: no ``../shared/data``) raises in the fixture
  that waits for it, so the tests that need it fail or skip as before.
- ``TMEFLOW_TEST_WORKERS=0`` builds each run in its fixture, in the main thread (the old way);
  ``--collect-only`` starts nothing.
- With runs in parallel, the test configs train scVI on one torch thread: two torch threads on
  a core that something else also uses spin-wait for each other (measured here: 300 steps of a
  small MLP took 2.1 s on two threads and 2.4 s on one on an idle 2-core machine, but 6.7 s
  against 2.5 s next to one busy process). Results do not depend on where a run is scheduled.
"""

import concurrent.futures as cf
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .helpers import copy_workflow

#: Runs built at once. Two on the 2-core CI machine: three were slower (load average 7; the
#: unit tests, sharing the cores, took over 30 minutes instead of ~10), though with two the CPU
#: was busy only 69% of the suite's wall time (43 CPU-minutes in 31.5 minutes).
WORKERS = int(os.environ.get("TMEFLOW_TEST_WORKERS", "2"))


@dataclass(frozen=True)
class Run:
    build: Callable[[Path], Any]  # gets a folder holding a fresh copy of the workflow
    cost_s: float  # rough seconds alone on 2 cores; longest runs start first


_RUNS: dict[str, Run] = {}
_FUTURES: dict[str, cf.Future] = {}
_POOL: list[cf.ThreadPoolExecutor] = []
#: the session's ``-m`` expression (a builder may read it, e.g. to skip SLURM)
MARKEXPR: list[str] = [""]


def register(name: str, cost_s: float) -> Callable[[Callable[[Path], Any]], Callable]:
    """Register ``build(work) -> result`` as the run behind the fixture called ``name``."""

    def decorate(build: Callable[[Path], Any]) -> Callable[[Path], Any]:
        if name in _RUNS:
            raise ValueError(f"background run {name!r} registered twice")
        _RUNS[name] = Run(build, cost_s)
        return build

    return decorate


def _workdir(factory: pytest.TempPathFactory, name: str) -> Path:
    return copy_workflow(factory.mktemp(name) / name)


def start(session: pytest.Session) -> list[str]:
    """Submit the registered runs that the selected tests need; returns their names."""
    MARKEXPR[0] = session.config.option.markexpr or ""
    needed = {n for item in session.items for n in getattr(item, "fixturenames", ()) if n in _RUNS}
    if WORKERS < 1 or not needed or session.config.option.collectonly:
        return []
    factory = session.config._tmp_path_factory  # the session's tmp_path_factory
    pool = cf.ThreadPoolExecutor(WORKERS, thread_name_prefix="tmeflow-run")
    _POOL.append(pool)
    order = sorted(needed, key=lambda n: (-_RUNS[n].cost_s, n))
    for name in order:
        _FUTURES[name] = pool.submit(_RUNS[name].build, _workdir(factory, name))
    return order


def result(name: str, factory: pytest.TempPathFactory) -> Any:
    """The run's result: waits for the background build, or builds it here if none started."""
    future = _FUTURES.get(name)
    if future is None:
        return _RUNS[name].build(_workdir(factory, name))
    return future.result()


def stop() -> None:
    """End the pool: runs not yet started are dropped (an interrupted or ``-x`` session), a
    run already going is waited for (its Snakemake subprocess is not killed)."""
    for pool in _POOL:
        pool.shutdown(wait=True, cancel_futures=True)
    _POOL.clear()
    _FUTURES.clear()
