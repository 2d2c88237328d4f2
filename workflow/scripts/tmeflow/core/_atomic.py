"""Atomic output: every writer of the library writes through :func:`atomic_path`.

A failed or interrupted write never leaves a partial file at the destination, so Snakemake
never mistakes a half-written output for a finished one.
"""

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``, else it goes.

    The temporary file is created (empty) in the destination folder, so the final
    ``os.replace`` is a rename within one file system. Parent folders are created. The output
    gets the usual umask-based mode (``0o666 & ~umask``), not the ``0600`` of
    :func:`tempfile.mkstemp`.

    Parameters
    ----------
    path
        The destination file.

    Yields
    ------
    str
        The temporary path to write (the file exists and is empty; overwrite it).

    Examples
    --------
    >>> with atomic_path("out/table.tsv") as tmp:  # doctest: +SKIP
    ...     Path(tmp).write_bytes(data)
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        yield tmp
        # mkstemp creates the file 0600; give the output the usual umask-based mode
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
