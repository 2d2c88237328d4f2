"""Ingest one sample: read its counts, call cells, annotate its cells, report what was done.

Reading is :mod:`tmeflow.inputs._read_counts`; cell calling in an unfiltered matrix is
:mod:`tmeflow.inputs._cell_calling`; the mouse spelling of upper-cased symbols is
:mod:`tmeflow.inputs._gene_names`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

from tmeflow.core import _genesets as genesets
from tmeflow.core._errors import InputError, input_error
from tmeflow.inputs._formats import detect_format
from tmeflow.inputs._gene_names import repair_mouse_symbol_case
from tmeflow.inputs._read_counts import read_counts

logger = logging.getLogger(__name__)

RESERVED_OBS: tuple[str, ...] = ("sample", "condition", "barcode")


def ingest_sample(
    path: str | os.PathLike[str],
    *,
    sample: str,
    condition: str,
    extra: Mapping[str, Any] | None = None,
    fmt: str | None = None,
    cell_calling: str = "auto",
    raw_min_barcodes: int = 20_000,
    min_umi: int = 100,
    species: str | None = None,
    symbol_case: str = "auto",
    symbol_reference: Iterable[str] = (),
    obs_column: str | None = None,
    obs_value: str | None = None,
    member: str | None = None,
) -> ad.AnnData:
    """Read one sample's raw counts, call cells in an unfiltered matrix, annotate its cells.

    Writes ``obs["sample"]``, ``obs["condition"]``, ``obs["barcode"]`` (the barcode as in the
    input) and one ``obs`` column per ``extra`` item (the sample sheet's other columns);
    ``obs_names`` become ``f"{sample}_{barcode}"``. Columns of an h5ad input's ``obs`` that
    clash with these names are kept with an ``_input`` suffix. ``uns["ingest"]`` records the
    input path, format, the orientation of a table, and ``cell_calling`` (see
    :func:`tmeflow.inputs.call_cells`: whether the matrix looked raw, the UMI cut-off,
    barcodes in and cells out) and, for a sample that is part of a deposited h5ad, its
    ``obs_column`` and ``obs_value``.

    Parameters
    ----------
    cell_calling, raw_min_barcodes, min_umi
        Passed to :func:`tmeflow.inputs.call_cells` (config keys ``ingest.*``).
    species, symbol_case, symbol_reference
        With ``species="mouse"`` and ``symbol_case="auto"``, upper-cased mouse symbols get
        their mouse spelling (:func:`tmeflow.inputs.repair_mouse_symbol_case` with
        ``symbol_reference``); recorded in ``uns["ingest"]["symbols_recased"]``. ``"keep"``
        leaves names as they are.
    obs_column, obs_value
        The sample sheet's optional columns: the sample's cells are those of ``path`` (an h5ad)
        whose ``obs[obs_column] == obs_value``; only their rows are read
        (:func:`tmeflow.inputs.read_counts`). Cell calling then sees the selected cells only
        (with ``cell_calling: auto`` a split of a filtered deposit does not look raw and is kept
        whole).
    member
        The sample sheet's optional ``member`` column: the sample's input in a GEO
        ``_RAW.tar`` bundle (:func:`tmeflow.inputs.read_geo_tar`); recorded with the member
        files read in ``uns["ingest"]["bundle"]``.

    Raises
    ------
    InputError
        Missing or unreadable input, non-count values, zero cells or zero features, a raw
        matrix with ``cell_calling="never"``, or an ``extra`` column that would overwrite
        ``barcode`` or disagree with sample/condition; ``obs_column`` on an input that is not
        an h5ad, a column the file lacks or a value that selects no cell.
    """
    p = Path(path)
    fmt = detect_format(p, sample=sample) if fmt in (None, "", "auto") else fmt
    adata = read_counts(
        p, sample=sample, fmt=fmt, obs_column=obs_column, obs_value=obs_value, member=member
    )
    orientation = adata.uns.pop("orientation", None)
    bundle = adata.uns.pop("bundle", None)
    adata, calling = _call_cells(
        adata,
        p,
        sample=sample,
        mode=cell_calling,
        raw_min_barcodes=raw_min_barcodes,
        min_umi=min_umi,
    )
    adata.obs = _sample_obs(adata, p, sample=sample, condition=condition, extra=extra)
    recased = _recase_symbols(adata, sample, species, symbol_case, symbol_reference)
    adata.uns["ingest"] = {
        "path": os.fspath(p),
        "format": fmt,
        "sample": str(sample),
        "symbols_recased": int(recased),
    }
    if obs_column:
        adata.uns["ingest"]["obs_column"] = str(obs_column)
        adata.uns["ingest"]["obs_value"] = str(obs_value)
    if orientation is not None:
        adata.uns["ingest"]["orientation"] = orientation
    if bundle is not None:
        adata.uns["ingest"]["bundle"] = bundle
    adata.uns["ingest"]["cell_calling"] = calling
    logger.info(
        "sample %s: ingested %d cells x %d features from %s (%s)",
        sample,
        adata.n_obs,
        adata.n_vars,
        p,
        fmt,
    )
    return adata


def _call_cells(
    adata: ad.AnnData,
    p: Path,
    *,
    sample: str,
    mode: str,
    raw_min_barcodes: int,
    min_umi: int,
) -> tuple[ad.AnnData, dict[str, Any]]:
    """Cell calling of :func:`ingest_sample`; fails on zero cells or zero features."""
    from tmeflow.inputs import _cell_calling as cellcalling

    if adata.n_obs:
        try:
            adata, calling = cellcalling.call_cells(
                adata,
                mode=mode,
                raw_min_barcodes=raw_min_barcodes,
                min_umi=min_umi,
                sample=sample,
                path=os.fspath(p),
            )
        except ValueError as exc:
            raise InputError(str(exc)) from exc
        adata.uns.pop("cell_calling", None)
    else:
        calling = {}
    if adata.n_obs == 0:
        raise input_error(
            sample,
            p,
            "zero cells",
            "Check that this is the filtered (cell-called) matrix and not an empty export.",
        )
    if adata.n_vars == 0:
        raise input_error(sample, p, "zero features", "Check the features file / reference.")
    return adata, calling


def _recase_symbols(
    adata: ad.AnnData,
    sample: str,
    species: str | None,
    symbol_case: str,
    symbol_reference: Iterable[str],
) -> int:
    """The mouse spelling of upper-cased symbols (``species="mouse"``, ``symbol_case="auto"``)."""
    recased = (
        repair_mouse_symbol_case(adata, symbol_reference)
        if species == "mouse" and symbol_case == "auto"
        else 0
    )
    if recased:
        logger.warning(
            "sample %s: every feature name was upper-case; %d mouse symbols were given their "
            "mouse spelling (GAS6 -> Gas6; input names in var['symbol_input']; "
            "ingest.symbol_case: keep turns this off)",
            sample,
            recased,
        )
    return recased


def reference_symbols(
    panels: Iterable[str | os.PathLike[str]],
    gene_sets: Iterable[str | os.PathLike[str]],
    genes: Iterable[str],
) -> Iterator[str]:
    """Gene symbols in their canonical spelling: genes of interest, panels' markers, gene sets.

    A generator: the files are read only when ingest needs them (all-upper-case mouse names,
    :func:`tmeflow.inputs.repair_mouse_symbol_case`).

    Parameters
    ----------
    panels
        Marker-panel files (:func:`tmeflow.core.marker_sets`).
    gene_sets
        GMT files (:func:`tmeflow.core.read_gmt`).
    genes
        The genes of interest.

    Yields
    ------
    str
        The genes, then every panel's markers, then every gene set's members, in file order.
    """
    yield from genes
    for panel in panels:
        for markers in genesets.marker_sets(panel).values():
            yield from markers
    for gmt in gene_sets:
        for members in genesets.read_gmt(gmt).values():
            yield from members


def symbol_reference(
    species: str | None,
    symbol_case: str,
    panels: Iterable[str | os.PathLike[str]],
    gene_sets: Iterable[str | os.PathLike[str]],
    genes: Iterable[str],
) -> Iterable[str]:
    """The ``symbol_reference`` of :func:`ingest_sample`: empty unless mouse with ``"auto"``.

    Parameters
    ----------
    species, symbol_case
        As for :func:`ingest_sample`.
    panels, gene_sets, genes
        As for :func:`reference_symbols`.

    Returns
    -------
    Iterable[str]
        A lazy :func:`reference_symbols` for ``species="mouse"`` with ``symbol_case="auto"``,
        else an empty tuple.
    """
    if species == "mouse" and symbol_case == "auto":
        return reference_symbols(panels, gene_sets, genes)
    return ()


def _sample_obs(
    adata: ad.AnnData,
    p: Path,
    *,
    sample: str,
    condition: str,
    extra: Mapping[str, Any] | None,
) -> pd.DataFrame:
    """``adata.obs`` with sample, condition, barcode and the ``extra`` columns; new obs_names."""
    extra = dict(extra or {})
    fixed = {"sample": sample, "condition": condition}
    for key in list(extra):
        if key in fixed:
            if str(extra[key]) != str(fixed[key]):
                raise input_error(
                    sample,
                    p,
                    f"extra column {key!r}={extra[key]!r} disagrees with {fixed[key]!r}",
                    "Do not pass sample/condition in `extra`.",
                )
            del extra[key]
        elif key == "barcode":
            raise input_error(
                sample,
                p,
                "sample-sheet column 'barcode' would overwrite the cell barcodes",
                "Rename that column in the sample sheet.",
            )
    obs = adata.obs.copy()
    for col in RESERVED_OBS:
        if col in obs.columns:
            logger.info("input obs column %r kept as %r", col, f"{col}_input")
            obs = obs.rename(columns={col: f"{col}_input"})
    barcodes = adata.obs_names.astype(str).to_numpy()
    obs.insert(0, "barcode", barcodes)
    obs.insert(0, "condition", str(condition))
    obs.insert(0, "sample", str(sample))
    for key, value in extra.items():
        obs[str(key)] = value
    obs.index = pd.Index([f"{sample}_{b}" for b in barcodes])
    return obs


def ingest_report(adata: ad.AnnData) -> dict[str, Any]:
    """One row describing an ingested sample (for ``results/ingest/{sample}.tsv``).

    Columns: ``sample``, ``format``, ``orientation`` (tables only, else empty),
    ``n_barcodes`` (in the input), ``looks_raw``, ``cells_called``, ``cell_calling_cutoff_umi``
    (NaN when no cell calling), ``n_cells``, ``n_features``, ``symbols_recased`` (upper-case
    mouse symbols given the mouse spelling; see :func:`tmeflow.inputs.repair_mouse_symbol_case`),
    ``obs_column`` and ``obs_value`` (the selection of a deposited h5ad; empty when the sample
    is the whole file), ``bundle_members`` (the files read from a GEO ``_RAW.tar``, comma
    separated; empty for other inputs).
    """
    info = adata.uns.get("ingest", {})
    calling = info.get("cell_calling", {}) or {}
    orient = info.get("orientation", {}) or {}
    return {
        "sample": info.get("sample", ""),
        "format": info.get("format", ""),
        "orientation": orient.get("read_as", ""),
        "n_barcodes": int(calling.get("n_barcodes", adata.n_obs)),
        "looks_raw": bool(calling.get("looks_raw", False)),
        "cells_called": bool(calling.get("called", False)),
        "cell_calling_cutoff_umi": float(calling.get("cutoff_umi", float("nan"))),
        "n_cells": int(adata.n_obs),
        "n_features": int(adata.n_vars),
        "symbols_recased": int(info.get("symbols_recased", 0)),
        "obs_column": str(info.get("obs_column", "")),
        "obs_value": str(info.get("obs_value", "")),
        "bundle_members": ",".join((info.get("bundle", {}) or {}).get("members", [])),
    }
