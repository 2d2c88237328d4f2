"""Gene-set files: GMT collections and a marker panel's labels as sets ``MARKERS_<label>``.

Read by ingest (the canonical spelling of symbols), the demo simulator (its gene pool) and
:mod:`tmeflow.stats._gsea` (the sets tested). No download: every set comes from a shipped file.
"""

from os import PathLike
from pathlib import Path

from tmeflow.core._panel import all_markers, load_panel

MARKER_PREFIX = "MARKERS_"


def read_gmt(path: str | PathLike[str]) -> dict[str, list[str]]:
    """Read a GMT file (name, description, genes...) into ``{name: genes}``.

    Kept by hand rather than :func:`gseapy.read_gmt`: on the shipped
    ``config/genesets/*.gmt`` and on blank lines, CRLF, trailing tabs and duplicate set
    names (last line wins) the two give identical dicts, but gseapy keeps duplicate genes
    and empty fields (``a<TAB><TAB>b``), silently skips a line without genes (this raises),
    needs a ``str`` path ending in ``gmt``, and would make gseapy a dependency of the
    ``ingest_sample`` and ``demo_simulate`` environments (``bench/lib_equality.py``).

    Raises
    ------
    FileNotFoundError
        ``path`` is not an existing file (a library *name* is never looked up).
    """
    path = Path(path)
    if not path.is_file():
        msg = (
            f"gene-set file {str(path)!r} not found; pass the path of a GMT file shipped with "
            "the workflow (config/genesets/), never a library name (that would download it)"
        )
        raise FileNotFoundError(msg)
    sets: dict[str, list[str]] = {}
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) < 3:
            msg = f"{path}:{n}: a GMT line needs a name, a description and at least one gene"
            raise ValueError(msg)
        sets[fields[0]] = list(dict.fromkeys(g for g in fields[2:] if g))
    return sets


def marker_sets(panel: str | PathLike[str]) -> dict[str, list[str]]:
    """The marker panel's cell types and subtypes as gene sets ``MARKERS_<label>``.

    The panel is read and checked by :func:`tmeflow.core.load_panel` (a missing file raises
    ``FileNotFoundError``, an invalid panel a ``ConfigError``).
    """
    sets = all_markers(load_panel(panel))
    return {f"{MARKER_PREFIX}{k}": list(dict.fromkeys(v)) for k, v in sets.items() if v}
