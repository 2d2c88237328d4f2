"""Run Python code in a fresh interpreter that imports tmeflow and the tests as this one does.

For checks of what a job's process loads (``sys.modules``), which the test process, having
imported everything already, cannot show.
"""

import os
import subprocess
import sys


def fresh_python(code: str) -> str:
    """The standard output of ``python -c code`` with this process's import path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    return out.stdout
