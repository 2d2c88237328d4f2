"""What every Snakemake adapter does first: log into the rule's log file, pin threads."""

import logging
import os
import sys
import warnings


def setup(log_path: str, *, threads: int = 1, numba: bool = True) -> logging.Logger:
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
    # BLAS pools read these when first used: one thread (see pin_threads). NUMBA_NUM_THREADS is
    # not touched: numba is already imported (through scanpy) and refuses a changed value;
    # pin_threads uses numba.set_num_threads instead.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(BLAS_THREADS))
    os.environ.setdefault("MPLBACKEND", "Agg")
    pin_threads(threads, numba=numba)
    return logging.getLogger("tmeflow")


#: BLAS/OpenMP threads of every job, whatever its rule's threads. Every numerical step of the
#: workflow makes many small BLAS calls (PyDESeq2's per-gene L-BFGS-B fits, loess, PCA
#: products) where a second thread gains little, and a waiting OpenBLAS thread spins: on a
#: busy machine one PyDESeq2 fit took 10-28 s with 2 BLAS threads against 4 s with one.
#: A fixed count also keeps sums in the same order whatever ``--cores`` gives the rule.
BLAS_THREADS = 1


def pin_threads(threads: int, *, numba: bool = True) -> None:
    """Pin BLAS/OpenMP pools to :data:`BLAS_THREADS`; numba and (if imported) torch to ``threads``.

    numba's parallel kernels (scanpy's means and variances) give each row or column to one
    thread, so their results do not depend on ``threads``; torch's do (scVI sets its own,
    configured count: :func:`tmeflow.embed.train_scvi`).

    ``numba=False`` leaves numba's thread pool unlaunched (``numba.set_num_threads`` starts
    it): the scVI job, where a launched pool made every torch epoch about 1.5x slower (4
    epochs on the demo's 8,444 cells: 14.0 s with it, 9.5-9.8 s without).
    """
    from threadpoolctl import threadpool_limits

    threads = max(1, int(threads))
    threadpool_limits(limits=BLAS_THREADS)
    if numba and "numba" in sys.modules:
        nb = sys.modules["numba"]
        nb.set_num_threads(min(threads, nb.config.NUMBA_NUM_THREADS))
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
