r"""Write a sample sheet from a GEO series' file list (``filelist.txt`` of a ``_RAW.tar``).

GEO lists a series' supplementary ``GSE..._RAW.tar`` in ``suppl/filelist.txt``, tab separated::

    Archive/File  Name                                 Time                 Size      Type
    Archive       GSE999001_RAW.tar                    03/14/2021 10:21:07  187381760 TAR
    File          GSM4811001_ctrl_m1_matrix.mtx.gz     03/12/2021 16:02:14  41233980  MTX
    ...

:func:`sheet_from_filelist` turns its ``File`` rows into one sheet row per count input of the
tar (:func:`tmeflow.inputs.bundle_inputs`: mtx triplets by shared prefix, h5, h5ad, tables),
with ``path`` the tar and ``member`` the input's GSM accession (its key when the accession
starts several inputs). Command line (run from the repository, or with ``workflow/scripts`` on
``PYTHONPATH``)::

    PYTHONPATH=workflow/scripts python -m tmeflow.inputs._geo_sheet filelist.txt \\
        --tar resources/geo/GSE999001_RAW.tar --condition ctrl=control --condition KO=treated \\
        --out config/samples.tsv

Conditions come from ``--condition PATTERN=LEVEL`` (a regular expression searched in the
input's name, case-insensitive; the first that matches wins); a row no pattern matches gets an
empty condition, which the workflow's sheet check refuses until it is filled in.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from tmeflow.inputs._geo_tar import bundle_inputs

#: The header of a GEO ``filelist.txt``.
FILELIST_COLUMNS: tuple[str, ...] = ("Archive/File", "Name", "Time", "Size", "Type")
_SUFFIXES = re.compile(
    r"[_.-]?(filtered|raw)?_?(feature|gene)_?bc_?matrix(ces)?(_h5)?\.h5$"
    r"|[_.-]?(counts?|umi|matrix|expression|raw|filtered)?\.(csv|tsv|txt)(\.gz)?$"
    r"|\.(h5ad|h5|hdf5)$",
    re.IGNORECASE,
)


def read_filelist(text: str) -> tuple[str | None, list[str]]:
    """The archive's name and the file names of a GEO ``filelist.txt``.

    Raises
    ------
    ValueError
        The text lacks the ``Archive/File``/``Name`` header.
    """
    table = pd.read_csv(io.StringIO(text), sep="\t", dtype=str, keep_default_na=False)
    table.columns = [c.strip() for c in table.columns]
    if not {"Archive/File", "Name"} <= set(table.columns):
        raise ValueError(
            f"not a GEO filelist.txt: header {list(table.columns)}, expected the tab-separated "
            f"columns {list(FILELIST_COLUMNS)}"
        )
    kind = table["Archive/File"].str.strip().str.lower()
    names = table["Name"].str.strip()
    archives = names[kind == "archive"].tolist()
    return (archives[0] if archives else None), names[kind == "file"].tolist()


def _sample_id(key: str, gsm: str | None) -> str:
    title = key[len(gsm) :] if gsm else key
    title = _SUFFIXES.sub("", Path(title).name).strip("_.-")
    title = re.sub(r"[^A-Za-z0-9._-]+", "_", title).strip("_.-")
    return title or gsm or re.sub(r"[^A-Za-z0-9._-]+", "_", Path(key).name).strip("_.-")


def sheet_from_filelist(
    names: Sequence[str], *, tar: str, conditions: Sequence[tuple[str, str]] = ()
) -> pd.DataFrame:
    """One sample-sheet row per count input in a bundle's file names.

    Parameters
    ----------
    names
        The bundle's file names (:func:`read_filelist`).
    tar
        The sheet's ``path`` for every row (where the tar is, or will be, kept).
    conditions
        ``(pattern, level)`` pairs: a row's condition is the level of the first pattern found
        (case-insensitive regex search) in its input's name; empty when none is.

    Returns
    -------
    pandas.DataFrame
        Columns ``sample`` (the name after the GSM accession, without 10x/table suffixes:
        ``ctrl_m1``; the accession itself when that is empty or not unique), ``condition``,
        ``path``, ``member`` (the GSM accession when it starts one input, else the key) and
        ``geo_accession``, in name order.
    """
    inputs = bundle_inputs(list(names))
    gsm_counts: dict[str | None, int] = {}
    for i in inputs.values():
        gsm_counts[i.gsm] = gsm_counts.get(i.gsm, 0) + 1
    rows = []
    for key, i in inputs.items():
        level = next((lvl for pat, lvl in conditions if re.search(pat, key, re.IGNORECASE)), "")
        unique_gsm = i.gsm is not None and gsm_counts[i.gsm] == 1
        rows.append(
            {
                "sample": _sample_id(key, i.gsm),
                "condition": level,
                "path": tar,
                "member": i.gsm if unique_gsm else key,
                "geo_accession": i.gsm or "",
            }
        )
    sheet = pd.DataFrame(rows, columns=["sample", "condition", "path", "member", "geo_accession"])
    clash = sheet["sample"].duplicated(keep=False)
    sheet.loc[clash, "sample"] = [
        re.sub(r"[^A-Za-z0-9._-]+", "_", m) for m in sheet.loc[clash, "member"]
    ]
    return sheet


def _condition(text: str) -> tuple[str, str]:
    pattern, sep, level = text.rpartition("=")
    if not sep or not pattern or not level:
        raise argparse.ArgumentTypeError(f"expected PATTERN=LEVEL, got {text!r}")
    re.compile(pattern)
    return pattern, level


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m tmeflow.inputs._geo_sheet FILELIST --out SHEET``."""
    parser = argparse.ArgumentParser(
        prog="python -m tmeflow.inputs._geo_sheet",
        description="Write a tmeflow sample sheet from a GEO series' filelist.txt.",
    )
    parser.add_argument("filelist", type=Path, help="the series' suppl/filelist.txt")
    parser.add_argument("--out", type=Path, required=True, help="the sample sheet (TSV) to write")
    parser.add_argument(
        "--tar",
        help="the sheet's path of the bundle (default: the archive's name in the list)",
    )
    parser.add_argument(
        "--condition",
        type=_condition,
        action="append",
        default=[],
        metavar="PATTERN=LEVEL",
        help="inputs whose name matches PATTERN (regex, case-insensitive) get condition LEVEL",
    )
    args = parser.parse_args(argv)
    try:
        archive, names = read_filelist(args.filelist.read_text())
    except ValueError as exc:
        parser.error(str(exc))
    tar = args.tar or archive
    if not tar:
        parser.error("the file list names no archive; give --tar")
    sheet = sheet_from_filelist(names, tar=tar, conditions=args.condition)
    if sheet.empty:
        parser.error(f"{args.filelist} lists no count input (mtx triplet, .h5, .h5ad or table)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w") as fh:
        fh.write(f"# written by tmeflow.inputs._geo_sheet from {args.filelist.name}\n")
        sheet.to_csv(fh, sep="\t", index=False, lineterminator="\n")
    empty = sheet.loc[sheet["condition"] == "", "sample"].tolist()
    print(f"wrote {len(sheet)} sample(s) to {args.out}", file=sys.stderr)
    if empty:
        print(
            f"fill in the condition of {len(empty)} sample(s) ({', '.join(empty[:6])}): no "
            "--condition pattern matched them",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
