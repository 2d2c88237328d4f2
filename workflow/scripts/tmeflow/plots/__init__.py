"""Deterministic figures for every stage of the workflow, one module per stage.

- :mod:`tmeflow.core._vocabulary`: label vocabulary, display orders and colours (no matplotlib);
- :mod:`tmeflow.plots.qc`: per-sample QC and the ambient contamination;
- :mod:`tmeflow.plots.atlas`: UMAPs, marker dot plot, resolution sweep, annotation scores and
  integration metrics;
- :mod:`tmeflow.plots.stats`: genes of interest, composition, volcano plots and GSEA;
- :mod:`tmeflow.plots.sources`: expression sources of a gene and its per-animal primary sources;
- ``_style`` (rcParams, deterministic saving, figure factory, message panel) and ``_utils``
  (checks, dodging, the one legend helper) are shared.

Every plotting function takes an output stem, writes ``{stem}.pdf`` and ``{stem}.png``
(:func:`tmeflow.plots._style.save_figure`) and returns the files written. Figures are built on
:class:`matplotlib.figure.Figure` with the Agg canvas, never through pyplot's global state, and
the same inputs give the same bytes. Conditions are drawn in the contrast's order, reference
first with the same colour everywhere, and samples are ordered by arm, then naturally.

Importing this package (or :mod:`~tmeflow.core._vocabulary`) does not import matplotlib.
"""
