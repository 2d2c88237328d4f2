"""Remote inputs: tell a URL, and verify and keep a download (checksum, atomic copy)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from tmeflow.core._atomic import atomic_path
from tmeflow.core._errors import input_error


def is_url(path: str | os.PathLike[str]) -> bool:
    """True for http(s) paths (downloaded by the workflow's ``download_sample`` rule)."""
    return str(path).startswith(("http://", "https://"))


def url_file_name(url: str) -> str:
    """The file name a download keeps: the URL's last path segment, without query or fragment.

    Parameters
    ----------
    url
        An http(s) URL.

    Returns
    -------
    str
        E.g. ``"s1.h5"`` for ``"https://host/data/s1.h5?download=1"``.
    """
    return Path(url.split("?", 1)[0].split("#", 1)[0]).name


def sha256sum(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_download(
    src: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    sha256: str | None,
    sample: str,
    url: str,
) -> str:
    """Check a downloaded file and copy it to ``dest`` atomically; return its SHA-256.

    Nothing is written to ``dest`` unless the file is non-empty and, when ``sha256`` is given,
    its checksum matches (case-insensitive).

    Raises
    ------
    InputError
        Empty download, or a checksum mismatch (names sample, URL, both digests and the fix).
    """
    src, dest = Path(src), Path(dest)
    if src.stat().st_size == 0:
        raise input_error(
            sample, url, "the download is empty", "Check the URL (does it need a login?)."
        )
    digest = sha256sum(src)
    if sha256 and digest.lower() != sha256.strip().lower():
        raise input_error(
            sample,
            url,
            f"checksum mismatch: the downloaded file has sha256 {digest}, the sample sheet "
            f"expects {sha256.strip().lower()}",
            "The file changed upstream or the download is corrupt: check the URL and the "
            "sha256 column of the sample sheet, then re-run (nothing was kept).",
        )
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
    return digest
