"""The demo folder's writer: the 10x files, the sample sheet, the truth and what was planted.

:func:`write_demo` writes the files of :func:`tmeflow.simulate.layout.demo_outputs` with the
sheet of :func:`tmeflow.simulate.layout.demo_layout`. Samples alternate between 10x HDF5 and
10x v3 mtx folders so that the demo exercises both readers; ``truth.tsv`` and ``planted.yaml``
sit next to them.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from tmeflow.simulate.layout import demo_layout
from tmeflow.simulate.tenx import write_10x_h5, write_10x_mtx

if TYPE_CHECKING:
    from tmeflow.simulate.model import SimulatedExperiment

__all__ = ["write_demo"]


def write_demo(outdir: str | PathLike[str], experiment: SimulatedExperiment) -> None:
    """Write the demo input files of an experiment.

    Writes one 10x input per sample as given by :func:`demo_layout` (HDF5 or mtx folder),
    ``truth.tsv`` (tab-separated, one row per cell) and ``planted.yaml`` into ``outdir``
    (created if needed); :func:`demo_outputs` lists the files. Output is byte-deterministic.

    Parameters
    ----------
    outdir
        Output directory.
    experiment
        The result of :func:`simulate_experiment`.
    """
    planted = experiment.planted
    try:
        n_rep = int(planted["sizes"]["n_replicates"])
        conds = tuple(planted["conditions"])
    except (KeyError, TypeError) as err:
        msg = "experiment.planted lacks sizes/conditions; build it with simulate_experiment()"
        raise ValueError(msg) from err
    layout = demo_layout(n_replicates=n_rep, conditions=conds)
    missing = sorted(set(layout["sample"]) - set(experiment.samples))
    if missing:
        msg = f"experiment lacks samples {missing} of its layout; was it modified?"
        raise ValueError(msg)
    out = Path(outdir)
    out.mkdir(parents=True, exist_ok=True)
    for sample, path, fmt in zip(layout["sample"], layout["path"], layout["format"], strict=True):
        adata = experiment.samples[sample]
        if fmt == "10x_h5":
            write_10x_h5(out / path, adata)
        else:
            write_10x_mtx(out / path, adata)
    experiment.truth.to_csv(out / "truth.tsv", sep="\t", index=False, lineterminator="\n")
    with (out / "planted.yaml").open("w", encoding="utf-8") as handle:
        yaml.safe_dump(planted, handle, sort_keys=False, default_flow_style=None)
