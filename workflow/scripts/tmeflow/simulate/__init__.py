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

from tmeflow.simulate.demo import write_demo
from tmeflow.simulate.genes import read_gmt_genes
from tmeflow.simulate.layout import MTX_FILES, demo_layout, demo_outputs
from tmeflow.simulate.model import SimulatedExperiment, simulate_experiment
from tmeflow.simulate.tenx import write_10x_h5, write_10x_mtx
from tmeflow.simulate.truth import (
    CELL_TYPES,
    COMPOSITION_REFERENCE,
    COMPOSITION_TEST,
    CONDITIONS_DEFAULT,
    IFN_ALPHA_GENES,
    MOUSE_MITO,
    PATHWAY_NAME,
    T_CELL_MARKERS,
    TRUTH_COLUMNS,
)

__all__ = [
    "CELL_TYPES",
    "COMPOSITION_REFERENCE",
    "COMPOSITION_TEST",
    "CONDITIONS_DEFAULT",
    "IFN_ALPHA_GENES",
    "MOUSE_MITO",
    "MTX_FILES",
    "PATHWAY_NAME",
    "TRUTH_COLUMNS",
    "T_CELL_MARKERS",
    "SimulatedExperiment",
    "demo_layout",
    "demo_outputs",
    "read_gmt_genes",
    "simulate_experiment",
    "write_10x_h5",
    "write_10x_mtx",
    "write_demo",
]
