"""Gene names: deterministic de-duplication and the mouse (MGI) spelling of symbols."""

from __future__ import annotations

import re
from collections.abc import Iterable

import anndata as ad


def make_unique(names: Iterable[str]) -> list[str]:
    """Make names unique deterministically, scanpy-style.

    The first occurrence keeps its name; later ones get ``-1``, ``-2``, ... (skipping
    suffixes that would clash with an existing name).
    """
    names = [str(n) for n in names]
    seen = set(names)
    counts: dict[str, int] = {}
    out: list[str] = []
    used: set[str] = set()
    for n in names:
        if n not in used:
            out.append(n)
            used.add(n)
            continue
        k = counts.get(n, 0)
        while True:
            k += 1
            cand = f"{n}-{k}"
            if cand not in seen and cand not in used:
                break
        counts[n] = k
        out.append(cand)
        used.add(cand)
    return out


_RIKEN_RE = re.compile(r"^(\d+[A-Z]\d+)RIK(\d*)$")
_ENSEMBL_RE = re.compile(r"^ENS[A-Z]*G\d{6,}")


def mouse_symbol(name: str) -> str:
    """The mouse (MGI) spelling of an upper-cased mouse gene symbol, by the nomenclature's rules.

    First letter upper, the rest lower (``LY6C2`` -> ``Ly6c2``, ``HBA-A1`` -> ``Hba-a1``);
    mitochondrial genes ``mt-`` (``MT-CO1`` -> ``mt-Co1``); RIKEN clones ``Rik``
    (``0610007P14RIK`` -> ``0610007P14Rik``). Ensembl ids are returned unchanged. Symbols whose
    rule has exceptions (``H2-AB1`` is ``H2-Ab1``) need a reference: see
    :func:`repair_mouse_symbol_case`.
    """
    if _ENSEMBL_RE.match(name):
        return name
    if name.startswith("MT-"):
        return "mt-" + name[3:].capitalize()
    m = _RIKEN_RE.match(name)
    if m:
        return f"{m.group(1)}Rik{m.group(2)}"
    return name[:1] + name[1:].lower()


def repair_mouse_symbol_case(adata: ad.AnnData, reference: Iterable[str] = ()) -> int:
    """Give mouse gene symbols that a deposit upper-cased (``GAS6``) their mouse spelling.

    Acts only when no feature name has a lower-case letter (every mouse symbol has some:
    ``Gas6``, ``mt-Co1``, ``0610007P14Rik``), so Title-case data and human data are left alone.
    Each symbol takes the spelling of the same symbol in ``reference`` (e.g. the symbols of the
    marker panels and gene sets, compared case-insensitively) or else :func:`mouse_symbol`'s.
    The input names are kept in ``var["symbol_input"]``; ``var_names`` stay unique. Returns the
    number of names changed (0 when nothing was done).
    """
    names = adata.var_names.astype(str).tolist()
    if not names or any(ch.islower() for n in names for ch in n):
        return 0
    canon: dict[str, str] = {}
    for symbol in reference:
        canon.setdefault(str(symbol).upper(), str(symbol))
    new = [canon.get(n, mouse_symbol(n)) for n in names]
    changed = sum(a != b for a, b in zip(names, new, strict=True))
    if changed:
        adata.var["symbol_input"] = names
        adata.var_names = make_unique(new)
    return changed
