"""What every Snakemake adapter does first: log into the rule's log file, pin threads."""

import logging
import os
import sys
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
    # matplotlib's PDF font subsetting logs every glyph at INFO: keep the logs readable
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    _log_uncaught()
    threads = max(1, int(threads))
    # BLAS pools read these when first used. NUMBA_NUM_THREADS is not touched: numba is already
    # imported (through scanpy) and refuses a changed value; tmeflow.integrate.set_threads uses
    # numba.set_num_threads instead.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))
    os.environ.setdefault("MPLBACKEND", "Agg")
    pin_threads(threads)
    return logging.getLogger("tmeflow")


def pin_threads(threads: int) -> None:
    """Limit the already-loaded BLAS/OpenMP pools, numba and (if imported) torch to ``threads``."""
    from threadpoolctl import threadpool_limits

    threads = max(1, int(threads))
    threadpool_limits(limits=threads)
    if "numba" in sys.modules:
        import numba

        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)


def _log_uncaught() -> None:
    """Write an uncaught exception's traceback into the rule's log too (not only stderr)."""
    previous = sys.excepthook
    if getattr(previous, "_tmeflow", False):
        return

    def hook(kind, value, tb):
        logging.getLogger("tmeflow").error("failed", exc_info=(kind, value, tb))
        previous(kind, value, tb)

    hook._tmeflow = True
    sys.excepthook = hook
