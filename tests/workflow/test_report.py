"""`snakemake --report` builds offline from a finished demo run, with every caption."""

import re
import shutil
from pathlib import Path

import pytest

from .helpers import REPO, snakemake

pytestmark = pytest.mark.workflow

CAPTIONS = sorted((REPO / "workflow" / "report").glob("*.rst"))
# Captions wired by report.smk itself (the front page and the provenance record).
OWN_CAPTIONS = ("workflow.rst", "provenance.rst")
REMOTE = re.compile(
    r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", re.I
)


def first_line(path: Path) -> str:
    return path.read_text().splitlines()[0].strip()


@pytest.fixture(scope="module")
def report_html(demo_run, tmp_path_factory) -> str:
    """The report of a copy of the finished demo run (the demo run itself is left alone)."""
    work = tmp_path_factory.mktemp("report") / "run"
    shutil.copytree(demo_run, work, symlinks=True)
    out = work / "results" / "report.html"
    snakemake(work, "--report", str(out), "--configfile", str(work / "test.yaml"))
    assert out.is_file()
    return out.read_text(errors="replace")


def test_every_caption_has_a_plain_one_sentence_first_line():
    assert len(CAPTIONS) >= 17
    for path in CAPTIONS:
        line = first_line(path)
        assert line.endswith("."), path.name
        assert line.count(". ") == 0, f"{path.name}: first line is one sentence"
        # Plain text, so that it can be found verbatim in the rendered report.
        assert not re.search(r"[`*<>&\"'|_]", line), path.name


def test_report_is_self_contained(report_html):
    assert len(report_html) > 10_000
    assert REMOTE.search(report_html) is None, REMOTE.search(report_html).group(0)


def test_report_has_front_page_and_provenance(report_html):
    for name in OWN_CAPTIONS:
        assert first_line(REPO / "workflow" / "report" / name) in report_html, name


def test_report_mentions_every_caption(report_html):
    missing = [p.name for p in CAPTIONS if first_line(p) not in report_html]
    assert missing == []
