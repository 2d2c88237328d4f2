"""Derive a human Hallmark GMT from the shipped mouse Hallmark through one-to-one orthologs.

Reproduces ``config/genesets/h.all.v2023.1.Hs.from_mouse_HCOP.gmt`` (see README.md in this
folder)::

    python config/genesets/derive_human_hallmark.py \\
        config/genesets/mh.all.v2023.1.Mm.symbols.gmt \\
        ../shared/data/genesets/orthologs_human_mouse_HCOP.tsv.gz \\
        config/genesets/h.all.v2023.1.Hs.from_mouse_HCOP.gmt

A mouse gene is kept when it has exactly one human ortholog in the table and that human gene
has exactly one mouse ortholog (a one-to-one pair); it is written as that human symbol. Genes
with no ortholog or a one-to-many / many-to-many relation are dropped (counted on stderr and in
the README). Set names and the link column are kept; sets keep their order, genes are sorted.
Standard library only; the output is byte-identical for the same inputs.
"""

import csv
import gzip
import sys
from collections import defaultdict
from pathlib import Path


def one_to_one(orthologs: Path) -> dict[str, str]:
    """Mouse symbol -> human symbol for the pairs that are one-to-one in the table."""
    human_of: defaultdict[str, set[str]] = defaultdict(set)
    mouse_of: defaultdict[str, set[str]] = defaultdict(set)
    with gzip.open(orthologs, "rt", newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            h, m = row["human_symbol"].strip(), row["mouse_symbol"].strip()
            if h and m:
                human_of[m].add(h)
                mouse_of[h].add(m)
    return {
        m: next(iter(hs))
        for m, hs in human_of.items()
        if len(hs) == 1 and len(mouse_of[next(iter(hs))]) == 1
    }


def derive(mouse_gmt: Path, orthologs: Path) -> tuple[list[str], list[tuple[str, int, int]]]:
    """The human GMT's lines and, per set, (name, mouse genes, human genes kept)."""
    mapping = one_to_one(orthologs)
    lines, counts = [], []
    for line in mouse_gmt.read_text().splitlines():
        if not line.strip():
            continue
        name, link, *genes = line.split("\t")
        mouse = sorted(set(g for g in genes if g))
        human = sorted({mapping[g] for g in mouse if g in mapping})
        lines.append("\t".join([name, link, *human]))
        counts.append((name, len(mouse), len(human)))
    return lines, counts


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    mouse_gmt, orthologs, out = map(Path, argv)
    lines, counts = derive(mouse_gmt, orthologs)
    out.write_text("".join(f"{line}\n" for line in lines))
    for name, n_mouse, n_human in counts:
        print(f"{name}\t{n_mouse}\t{n_human}\t{n_human / n_mouse:.1%}", file=sys.stderr)
    total_m, total_h = sum(c[1] for c in counts), sum(c[2] for c in counts)
    print(f"TOTAL\t{total_m}\t{total_h}\t{total_h / total_m:.1%}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
