"""Deterministic simulator of a human-cell-line xenograft single-cell experiment in nude mice.

The simulator is the demo data and the test oracle of the workflow. It writes real 10x input
files (Cell Ranger 3 HDF5 and v3 matrix-market folders, alternating per sample) plus a
ground-truth table (``truth.tsv``) and the documented planted effects (``planted.yaml``).

Modules:

- :mod:`~tmeflow.simulate.truth`: the planted biology (cell types, markers, composition, the
  planted DE gene and pathway, ``planted.yaml``);
- :mod:`~tmeflow.simulate.genes`: the gene universe (named genes plus filler from a GMT pool);
- :mod:`~tmeflow.simulate.model`: the generative model (profiles, doublets, low-quality cells,
  ambient RNA, gamma-Poisson counts) and :func:`simulate_experiment`;
- :mod:`~tmeflow.simulate.tenx`: byte-deterministic 10x HDF5 and mtx writers;
- :mod:`~tmeflow.simulate.demo`: the demo folder's sample sheet, file list and writer.
"""

from tmeflow._lazy import attach

# Lazy (tmeflow._lazy): the workflow's parse step needs only the layout (demo_layout,
# demo_outputs), not anndata and h5py behind the writers (about 1 s of every Snakemake start,
# and of every job of a cluster run, which parses the workflow again).
_NAMES = {
    "demo": ["write_demo"],
    "genes": ["read_gmt_genes"],
    "layout": ["MTX_FILES", "demo_layout", "demo_outputs"],
    "model": ["SimulatedExperiment", "simulate_experiment"],
    "tenx": ["write_10x_h5", "write_10x_mtx"],
    "truth": [
        "CELL_TYPES",
        "COMPOSITION_REFERENCE",
        "COMPOSITION_TEST",
        "CONDITIONS_DEFAULT",
        "IFN_ALPHA_GENES",
        "MOUSE_MITO",
        "PATHWAY_NAME",
        "T_CELL_MARKERS",
        "TRUTH_COLUMNS",
    ],
}
__getattr__, __dir__, __all__ = attach(__name__, _NAMES)
