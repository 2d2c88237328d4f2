"""Deterministic table output: fixed float format, gzip without timestamp or file name."""

import gzip
import io
from pathlib import Path

import pandas as pd

from tmeflow.core._atomic import atomic_path

FLOAT_FORMAT = "%.6g"


def write_tsv(table: pd.DataFrame, path: str | Path, *, index: bool = False, **kwargs) -> None:
    """Write a TSV (gzipped when the name ends in .gz) whose bytes depend only on the data."""
    path = Path(path)
    text = table.to_csv(sep="\t", index=index, float_format=FLOAT_FORMAT, **kwargs)
    data = text.encode()
    if path.suffix == ".gz":
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(data)
        data = buf.getvalue()
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)
