"""The Makefile's quick start: the Python check, the opt-in SLURM test, the demo's report.

The Python checks run ``make env`` on a copy of the Makefile and the lock in ``tmp_path`` with
a fake interpreter (a shell script that prints a version), so no venv is ever created here.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ..workflow import slurm_cluster

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(not shutil.which("make"), reason="make not installed")


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment without what an outer make or the user may have set for this one."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"PYTHON", "MAKEFLAGS", "MAKELEVEL", "MFLAGS", "TMEFLOW_SLURM"}
    }
    return env | extra


def _copy(tmp_path: Path) -> Path:
    work = tmp_path / "repo"
    work.mkdir()
    for name in ("Makefile", "requirements.lock"):
        shutil.copy(REPO / name, work / name)
    return work


def _fake_python(folder: Path, version: str, name: str = "python") -> Path:
    """A stand-in interpreter: prints ``version`` for ``-c``, records any other call."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -c ]; then echo {version}; exit 0; fi\n'
        f'echo "$@" >> "{folder}/calls"\n'
    )
    path.chmod(0o755)
    return path


def _make(work: Path, *args: str, env: dict[str, str] | None = None):
    return subprocess.run(
        ["make", *args], cwd=work, capture_output=True, text=True, env=env or _clean_env(),
        timeout=60, check=False,
    )  # fmt: skip


def test_wrong_python_is_refused_at_once_with_the_fix(tmp_path):
    work = _copy(tmp_path)
    fake = _fake_python(tmp_path / "bin", "3.12")
    run = _make(work, "env", f"PYTHON={fake}")
    assert run.returncode != 0
    assert f"tmeflow needs Python 3.11 (found 3.12 at {fake})" in run.stderr
    assert "run `make env PYTHON=python3.11` (pyenv, uv or conda can provide one)" in run.stderr
    assert "pip" not in run.stdout + run.stderr  # stopped before any install
    assert not (work / ".venv").exists()
    assert not (tmp_path / "bin/calls").exists()  # never asked to create a venv


def test_the_message_names_the_target_asked_for(tmp_path):
    work = _copy(tmp_path)
    fake = _fake_python(tmp_path / "bin", "3.12")
    run = _make(work, "demo", f"PYTHON={fake}")
    assert run.returncode != 0 and "run `make demo PYTHON=python3.11`" in run.stderr
    assert not (work / ".venv").exists()


def test_missing_python_is_refused_with_the_fix(tmp_path):
    work = _copy(tmp_path)
    run = _make(work, "env", "PYTHON=no-such-python3.11")
    assert run.returncode != 0
    assert "tmeflow needs Python 3.11 (found no Python at no-such-python3.11)" in run.stderr
    assert not (work / ".venv").exists()


def test_python_3_11_goes_on_to_create_the_venv(tmp_path):
    work = _copy(tmp_path)
    fake = _fake_python(tmp_path / "bin", "3.11")
    run = _make(work, "env", f"PYTHON={fake}")
    # the fake creates nothing, so the next step (.venv/bin/python -m pip) fails
    assert "tmeflow needs Python" not in run.stderr
    assert (tmp_path / "bin/calls").read_text().split() == ["-m", "venv", ".venv"]


@pytest.mark.parametrize("on_path", [True, False])
def test_python3_11_is_picked_when_on_path(tmp_path, on_path):
    work = _copy(tmp_path)
    bin_dir = tmp_path / "bin"  # PATH: only sed (the Makefile reads the lock with it)
    bin_dir.mkdir()
    (bin_dir / "sed").symlink_to(shutil.which("sed"))
    if on_path:
        _fake_python(bin_dir, "3.11", name="python3.11")
    run = subprocess.run(
        [shutil.which("make"), "-n", "env"], cwd=work, capture_output=True, text=True,
        env=_clean_env(PATH=str(bin_dir)), timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    expected = "python3.11" if on_path else "python3"
    assert f"{expected} -m venv .venv" in run.stdout


def _dry(*args: str, env: dict[str, str] | None = None) -> list[str]:
    run = _make(REPO, "-n", *args, env=env)
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()


def test_make_test_leaves_slurm_out_unless_asked():
    assert _dry("test")[-1].endswith('-m pytest -m "not slurm"')
    assert _dry("test", "TMEFLOW_SLURM=0")[-1].endswith('-m pytest -m "not slurm"')
    assert _dry("test", "TMEFLOW_SLURM=1")[-1].endswith("-m pytest")
    assert _dry("test", env=_clean_env(TMEFLOW_SLURM="1"))[-1].endswith("-m pytest")
    assert _dry("test-slurm")[-1].endswith("TMEFLOW_SLURM=1 .venv/bin/python -m pytest -m slurm")
    assert "make test TMEFLOW_SLURM=1" in (REPO / ".ci/run").read_text()  # CI keeps SLURM


def test_slurm_cluster_is_not_started_unless_asked(monkeypatch):
    for value in (None, "", "0", "no"):
        if value is None:
            monkeypatch.delenv("TMEFLOW_SLURM", raising=False)
        else:
            monkeypatch.setenv("TMEFLOW_SLURM", value)
        assert not slurm_cluster.requested()
        with pytest.raises(pytest.skip.Exception, match="SLURM is opt-in"):
            slurm_cluster.running_cluster().__enter__()
    monkeypatch.setenv("TMEFLOW_SLURM", "1")
    assert slurm_cluster.requested()


def test_make_demo_builds_the_report_and_prints_its_path():
    lines = _dry("-B", "demo")
    run = lines.index(".venv/bin/snakemake --cores all")
    assert lines[run + 1] == ".venv/bin/snakemake --cores 1 --report results/report.html"
    assert lines[run + 2] == f'echo "The demo\'s report: {REPO}/results/report.html"'
