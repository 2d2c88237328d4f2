"""Unit tests for tmeflow.inputs._downloads: URLs and verified downloads."""

from pathlib import Path

import pytest

from tmeflow.core._errors import InputError
from tmeflow.inputs import _downloads as downloads


def test_verify_download(tmp_path: Path) -> None:
    src = tmp_path / "src.h5"
    src.write_bytes(b"counts")
    good = downloads.sha256sum(src)
    dest = tmp_path / "resources" / "x" / "src.h5"
    assert downloads.verify_download(
        src, dest, sha256=good.upper(), sample="x", url="http://h/src.h5"
    )
    assert dest.read_bytes() == b"counts"
    dest2 = tmp_path / "bad" / "src.h5"
    with pytest.raises(InputError) as exc:
        downloads.verify_download(src, dest2, sha256="0" * 64, sample="x", url="http://h/src.h5")
    msg = str(exc.value)
    assert msg.startswith("sample 'x': checksum mismatch") and good in msg
    assert "'http://h/src.h5'" in msg and "sha256 column" in msg
    assert not dest2.exists() and not any(dest2.parent.glob("*"))
    assert downloads.is_url("https://a/b.h5") and not downloads.is_url("data/b.h5")


def test_url_file_name_drops_query_and_fragment() -> None:
    assert downloads.url_file_name("https://host/data/s1.h5?download=1#top") == "s1.h5"
    assert downloads.url_file_name("http://host/a/b.csv.gz") == "b.csv.gz"
    assert downloads.url_file_name("https://host/dir/") == "dir"  # the last segment


def test_is_url_takes_str_and_paths() -> None:
    assert downloads.is_url("http://h/x.h5") and downloads.is_url("https://h/x.h5")
    assert not downloads.is_url(Path("data/x.h5")) and not downloads.is_url("ftp://h/x.h5")
