"""Deterministic TSV output."""

import gzip

import pandas as pd

from tmeflow.core import _tables as tables


def test_gzip_bytes_do_not_depend_on_time(tmp_path, monkeypatch):
    df = pd.DataFrame({"a": [1.0 / 3, 2.0], "b": ["x", "y"]})
    tables.write_tsv(df, tmp_path / "one.tsv.gz")
    monkeypatch.setattr("time.time", lambda: 2_000_000_000.0)
    tables.write_tsv(df, tmp_path / "two.tsv.gz")
    assert (tmp_path / "one.tsv.gz").read_bytes() == (tmp_path / "two.tsv.gz").read_bytes()
    text = gzip.decompress((tmp_path / "one.tsv.gz").read_bytes()).decode()
    assert text.splitlines() == ["a\tb", "0.333333\tx", "2\ty"]


def test_plain_tsv_and_index(tmp_path):
    df = pd.DataFrame({"a": [1]}, index=pd.Index(["c1"], name="cell"))
    tables.write_tsv(df, tmp_path / "sub" / "t.tsv", index=True)
    assert (tmp_path / "sub" / "t.tsv").read_text() == "cell\ta\nc1\t1\n"
