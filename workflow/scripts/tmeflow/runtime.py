"""What every Snakemake adapter does first: log into the rule's log file, pin threads."""

import logging
import os
import warnings


def setup(log_path: str, *, threads: int = 1) -> logging.Logger:
    """Send logging and warnings to ``log_path`` and pin BLAS/numba/torch thread pools."""
    logging.basicConfig(
        filename=log_path,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    logging.captureWarnings(True)
    warnings.simplefilter("default")
    threads = max(1, int(threads))
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    os.environ.setdefault("MPLBACKEND", "Agg")
    return logging.getLogger("tmeflow")
