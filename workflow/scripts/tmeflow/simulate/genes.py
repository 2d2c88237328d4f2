"""The simulated gene universe: named (planted) genes plus filler drawn from a symbol pool."""

from dataclasses import dataclass
from os import PathLike

import numpy as np

from tmeflow.core._genesets import read_gmt
from tmeflow.simulate.truth import (
    HUMAN_MITO,
    HUMAN_TUMOR_MARKERS,
    IFN_ALPHA_GENES,
    MOUSE_MITO,
    MOUSE_TYPE_MARKERS,
    SUBTYPE_MARKERS,
    T_CELL_MARKERS,
)

MIN_FILLER_MOUSE = 100
MIN_FILLER_HUMAN = 50


def read_gmt_genes(path: str | PathLike[str]) -> list[str]:
    """Unique gene symbols of a GMT file.

    Parameters
    ----------
    path
        A GMT file (``name<TAB>description<TAB>gene<TAB>gene...`` per line), read with
        :func:`tmeflow.core.read_gmt` (a set name given twice keeps its last line).

    Returns
    -------
    list of str
        The sorted unique symbols of all sets.

    Raises
    ------
    FileNotFoundError
        ``path`` is not an existing file.
    ValueError
        A line lacks name, description or genes, or the file holds no genes.
    """
    sets = read_gmt(path)
    genes = {g.strip() for members in sets.values() for g in members} - {""}
    if not genes:
        msg = f"GMT file {str(path)!r} holds no genes"
        raise ValueError(msg)
    return sorted(genes)


@dataclass
class _Genes:
    human: list[str]
    mouse: list[str]
    human_filler: list[str]
    mouse_filler: list[str]

    @property
    def symbols(self) -> list[str]:
        return self.human + self.mouse

    @property
    def n_human(self) -> int:
        return len(self.human)


def _named_mouse_genes() -> list[str]:
    named: list[str] = []
    for markers in (*MOUSE_TYPE_MARKERS.values(), *SUBTYPE_MARKERS.values()):
        named.extend(markers)
    named.extend(["Gas6", "Mmp11", "Axl", *MOUSE_MITO, *IFN_ALPHA_GENES, *T_CELL_MARKERS])
    return list(dict.fromkeys(named))


def _named_human_genes() -> list[str]:
    return [*HUMAN_TUMOR_MARKERS, *HUMAN_MITO]


def _build_genes(
    rng: np.random.Generator,
    *,
    n_genes_mouse: int,
    n_genes_human: int,
    gene_pool: list[str] | None,
) -> _Genes:
    named_mouse = _named_mouse_genes()
    named_human = _named_human_genes()
    n_fill_mouse = n_genes_mouse - len(named_mouse)
    n_fill_human = n_genes_human - len(named_human)
    if n_fill_mouse < MIN_FILLER_MOUSE:
        msg = (
            f"n_genes_mouse={n_genes_mouse} is too small: need at least "
            f"{len(named_mouse) + MIN_FILLER_MOUSE} ({len(named_mouse)} named genes + "
            f"{MIN_FILLER_MOUSE} filler)"
        )
        raise ValueError(msg)
    if n_fill_human < MIN_FILLER_HUMAN:
        msg = (
            f"n_genes_human={n_genes_human} is too small: need at least "
            f"{len(named_human) + MIN_FILLER_HUMAN} ({len(named_human)} named genes + "
            f"{MIN_FILLER_HUMAN} filler)"
        )
        raise ValueError(msg)
    taken_upper = {g.upper() for g in named_mouse} | {g.upper() for g in named_human}
    pool: list[str] = []
    if gene_pool is not None:
        if isinstance(gene_pool, str):
            msg = "gene_pool must be a list of symbols, not a string; see read_gmt_genes()"
            raise TypeError(msg)
        seen: set[str] = set()
        for g in sorted({str(g).strip() for g in gene_pool}):
            up = g.upper()
            if not g or up in taken_upper or up in seen or up.startswith("MT-"):
                continue
            seen.add(up)
            pool.append(g)
        pool = [pool[i] for i in rng.permutation(len(pool))]
    mouse_filler = pool[:n_fill_mouse]
    human_filler = [g.upper() for g in pool[n_fill_mouse : n_fill_mouse + n_fill_human]]
    # synthetic symbols for the remainder (Gm-style; human ones are upper-cased "other" Gm genes)
    used_upper = taken_upper | {g.upper() for g in pool}
    counter = 10001

    def _next_synthetic() -> str:
        nonlocal counter
        while f"GM{counter}" in used_upper:
            counter += 1
        name = f"Gm{counter}"
        used_upper.add(name.upper())
        counter += 1
        return name

    while len(mouse_filler) < n_fill_mouse:
        mouse_filler.append(_next_synthetic())
    while len(human_filler) < n_fill_human:
        human_filler.append(_next_synthetic().upper())
    return _Genes(
        human=[*named_human, *human_filler],
        mouse=[*named_mouse, *mouse_filler],
        human_filler=human_filler,
        mouse_filler=mouse_filler,
    )
