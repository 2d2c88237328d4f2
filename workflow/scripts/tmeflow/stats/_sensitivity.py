"""Sensitivity of the confirmatory answers to the cheap analysis choices.

The confirmatory table (:mod:`tmeflow.stats._confirmatory`) answers each pre-specified hypothesis
once, with the configured choices. Here the whole family is tested again (Holm within each
setting) after changing one choice at a time, without retraining scVI: the neighbour graph and
the embedding of ``annotated.h5ad`` are kept.

Settings (one choice changed, everything else as configured):

``configured``
    The annotated object as it is (the confirmatory table's cells and labels).
``resolution``
    Leiden at another resolution of the sweep on the existing graph, then the same marker
    annotation (cell types, refinement, subtypes) with the configured thresholds.
``min_score`` / ``min_margin``
    The configured clustering annotated again with another annotation threshold.
``min_fraction``
    Xenografts: a stricter species threshold makes the cells whose majority species holds
    less than the new fraction ``mixed``, and QC removes mixed cells, so they are dropped
    (the other cells keep their labels; the count-based cross-species call is not re-run). A
    looser threshold brings back the cells QC removed as mixed whose fraction reaches it
    (and that the count-based call did not flag), with the labels of their nearest kept
    cells (``removed``: ``results/qc/removed_cells.h5ad``); without them it is ``not
    recomputable``.
``doublets``
    The opposite of ``qc.doublets``. Removal on: "off" brings back the cells QC removed as
    doublets only, labelled by their nearest kept cells (``removed``; without them ``not
    recomputable``: the doublets are gone before integration). Removal off: Scrublet never
    ran, so "on" is ``not recomputable`` either, unless ``obs['predicted_doublet']`` is
    present (then the flagged cells are dropped). With removal on, ``doublets
    either_caller`` is also tried: the stricter rule that removes every kept cell that either
    caller called on its own
    (``predicted_doublet_scrublet`` or ``predicted_doublet_cluster``; the consensus kept them),
    the direction of the doublet choice that the kept cells allow.
``marker_out``
    Leave-one-marker-out: the configured clustering annotated again with one marker of a
    cell type (``sensitivity.marker_out``, e.g. CAF and TAM) or of one of its subtypes left out
    of the panel (value ``CAF:Col1a1``, ``CAF/myCAF:Acta2``). A marker the data does not hold
    changes nothing (the configured rows, said so); the only marker of an entry is kept
    (``not available``).
``subtype_mix`` / ``within_subtype``
    ``change`` hypotheses on a cell type with subtypes (``sensitivity.subtypes``): tested with
    each animal's subtype shares within the type as covariates (``adjusted``), and within each
    subtype's cells alone (value: the subtype), so a change that is a shift of the subtype mix
    (more myCAFs, which make more Mmp11) shows. The other hypotheses are tested as configured.
``de_method``
    ``change`` hypotheses tested by another pseudobulk method on the same cells and labels
    (``sensitivity.de_methods``; ``limma_voom``: :mod:`tmeflow.stats._voom`, checked against
    limma in R; ``pydeseq2``: PyDESeq2's Wald test; the configured one, ``de_method`` of the
    confirm options, is skipped), so no verdict rests on one test alone.
``ambient_correction``
    "on": gene hypotheses on ``layers['counts_ambient_corrected']`` (values rounded to
    integers for the pseudobulk test) instead of the raw counts; ``not available`` when the
    annotated object has no such layer.

Two steps, two jobs: :func:`label_settings` re-labels the cells under each annotation setting
(:data:`ANNOTATION_SETTINGS`; it reads the marker columns of ``X`` and the graph, not the
counts) and returns a :class:`LabelSettings` (written as ``results/sensitivity/labels.tsv.gz``
and ``label_settings.tsv``); :func:`sensitivity` tests the family on those labels and under the
settings that change cells or tests. A change of the tests' settings alone (``de``,
``hypotheses``) re-runs only the second.

Speed: ``change`` hypotheses are tested without the apeGLM shrinkage (p-values, the unshrunk
estimate the verdict uses and the leave-one-animal-out check do not depend on it, so the
verdicts are those of the confirmatory table when nothing changes), and PyDESeq2 fits are
shared between settings whose group holds exactly the same cells (``confirm(fits=...)``). A
setting whose cells, labels and counts are the configured ones repeats the configured rows.
"""

import copy
import functools
import gc
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData

from tmeflow._utils import ROW_SUM_BLOCK, natural_key
from tmeflow.annotate import _cell_types as annotate_mod
from tmeflow.cells._doublets import DOUBLET_CALLERS, call_column
from tmeflow.core import _h5ad as h5ad
from tmeflow.core import _panel as panel_mod
from tmeflow.core._tables import write_tsv
from tmeflow.embed import _cluster as cluster
from tmeflow.stats import _confirmatory as confirmatory
from tmeflow.stats._de import METHOD_PYDESEQ2
from tmeflow.stats._voom import METHOD_VOOM

__all__ = [
    "AMBIENT_LAYER",
    "ANNOTATION_SETTINGS",
    "LABEL_PARAMS",
    "NOT_AVAILABLE",
    "NOT_RECOMPUTABLE",
    "SENSITIVITY_COLUMNS",
    "TRIED_PARAMS",
    "LabelSettings",
    "Setting",
    "label_settings",
    "marker_out_settings",
    "marker_x",
    "sensitivity",
    "settings",
    "subtype_settings",
    "verdict_grid",
]

#: The stricter doublet setting (with removal on) and the per-caller calls it uses.
EITHER_CALLER = "either_caller"
DOUBLET_CALLS = tuple(call_column(c) for c in DOUBLET_CALLERS)

logger = logging.getLogger(__name__)

#: The ambient-corrected counts layer the ``ambient_correction`` setting uses.
AMBIENT_LAYER = "counts_ambient_corrected"
#: Verdicts of a setting that could not be computed (beside the confirmatory three).
NOT_RECOMPUTABLE, NOT_AVAILABLE = "not recomputable", "not available"
CONFIGURED = "configured"
_LABELS = ("cell_type", "cell_subtype", "cell_state")
#: Settings that annotate again (marker scores on ``X``); the others keep the labels.
ANNOTATION_SETTINGS = (
    "resolution",
    "min_score",
    "min_margin",
    "subcluster_resolution",
    "min_subcluster_cells",
    "marker_out",
    "retrain",  # labels made by tmeflow.stats.retrain_labels (LabelSettings.extend)
)
#: The lists of values to try, by their keyword of :func:`sensitivity` (the rule's params).
TRIED_PARAMS = (
    "resolutions",
    "min_scores",
    "min_margins",
    "subcluster_resolutions",
    "min_subcluster_cells",
    "min_fractions",
    "de_min_cells",
    "de_methods",
    "marker_out",
)
#: What the ``de_method`` settings' notes call each method.
_DE_METHOD_NOTES = {
    METHOD_VOOM: "limma-voom (edgeR's filterByExpr genes, moderated t, no shrinkage)",
}
#: The lists of :func:`label_settings` (the ``sensitivity_labels`` rule's params).
LABEL_PARAMS = (
    "resolutions",
    "min_scores",
    "min_margins",
    "subcluster_resolutions",
    "min_subcluster_cells",
    "marker_out",
)
#: Annotation options whose other values re-annotate the used clustering.
_ANNOTATION_OPTIONS = ("min_score", "min_margin", "subcluster_resolution", "min_subcluster_cells")

#: Columns of ``results/sensitivity.tsv``, in order (one row per setting x hypothesis).
SENSITIVITY_COLUMNS: list[str] = [
    "setting",
    "value",
    "hypothesis",
    "verdict",
    "effect",
    "ci_low",
    "ci_high",
    "effect_scale",
    "pvalue",
    "p_holm",
    "loo_sign_stable",
    "reason",
    "n_cells",
    "n_cells_changed",
    "note",
]


@dataclass(frozen=True)
class Setting:
    """One changed choice: ``name`` (``resolution``, ``min_score``...) and its value."""

    name: str
    value: float | str

    @property
    def label(self) -> str:
        """``resolution 0.4``, ``doublets off``..."""
        return f"{self.name} {_value(self.value)}"


@dataclass
class _Variant:
    """A setting applied: the object to test, or why there is none."""

    adata: AnnData | None
    note: str = ""
    verdict: str = ""  # NOT_RECOMPUTABLE / NOT_AVAILABLE when adata is None
    reason: str = ""
    raw_counts: bool = True  # False: another counts layer (its own fit cache)
    confirm_options: dict = field(default_factory=dict)  # test settings changed (own cache)


def sensitivity(
    adata: AnnData,
    hypotheses: Sequence[confirmatory.Hypothesis],
    panel: dict,
    *,
    resolutions: Sequence[float] = (),
    min_scores: Sequence[float] = (),
    min_margins: Sequence[float] = (),
    subcluster_resolutions: Sequence[float] = (),
    min_subcluster_cells: Sequence[int] = (),
    min_fractions: Sequence[float] = (),
    min_fraction: float = 0.8,
    de_min_cells: Sequence[int] = (),
    de_methods: Sequence[str] = (),
    marker_out: Sequence[str] = (),
    subtypes: bool = True,
    doublets: bool = True,
    ambient: bool = True,
    ambient_layer: Callable[[], Any] | None = None,
    removed: Callable[[], AnnData | None] | None = None,
    x: Callable[[], Any] | None = None,
    labels: "LabelSettings | None" = None,
    annotate_options: Mapping,
    confirm_options: Mapping,
) -> pd.DataFrame:
    """The confirmatory family tested under each setting, one changed choice at a time.

    Parameters
    ----------
    adata
        ``results/annotate/annotated.h5ad``: log-normalised ``X`` (marker scores; or see
        ``x``), raw ``layers['counts']``, the neighbour graph (``obsp``, ``uns['neighbors']``),
        ``obsm['X_scVI']`` (subtype re-clustering), ``uns['cluster']`` (the resolution and
        seed used) and the labels; not modified.
    hypotheses
        The family (:func:`tmeflow.stats.parse_hypotheses`).
    panel
        The marker panel of the annotation (:func:`tmeflow.core.load_panels`).
    resolutions
        Leiden resolutions to try (the one used is skipped).
    min_scores, min_margins
        Annotation thresholds to try (the configured ones are skipped).
    subcluster_resolutions, min_subcluster_cells
        Subtype re-clustering settings to try (``annotation.subcluster_resolution`` and
        ``min_subcluster_cells``; they decide whether a subtype such as TAM_Mrc1 exists).
    min_fractions
        Species thresholds to try (xenografts only; ``min_fraction``, the configured one, is
        skipped).
    min_fraction
        The configured ``species_calling.min_fraction``.
    de_min_cells
        Values of ``de.min_cells`` (cells an animal needs in a group for its pseudobulk) to test
        the same cells and labels with; the configured one is skipped.
    de_methods
        Other pseudobulk tests of the ``change`` hypotheses (``de_method <m>`` settings, e.g.
        ``limma_voom``; the configured PyDESeq2 is skipped).
    marker_out
        Cell types whose markers, and their subtypes' markers, are left out one at a time
        (``marker_out`` settings).
    subtypes
        Test the ``change`` hypotheses on a cell type with subtypes again with the animals'
        subtype shares as covariates (``subtype_mix adjusted``) and within each subtype
        (``within_subtype <subtype>``): is the change a shift of the subtype mix?
    doublets
        The configured ``qc.doublets``; the setting tried is the opposite.
    ambient
        Try ambient correction "on" (:data:`AMBIENT_LAYER`).
    ambient_layer
        Returns :data:`AMBIENT_LAYER` (or ``None`` when the run has none), called when that
        setting is tried, its last one: a caller that read ``adata`` without that layer (e.g.
        :func:`tmeflow.core.read_layer` on the file) holds one counts matrix less for the
        others. ``None``: ``adata.layers[AMBIENT_LAYER]``, copied.
    removed
        Returns the cells QC removed as doublets or mixed species, labelled by their nearest
        kept cells (:func:`tmeflow.cells.recomputable_removed`, ``results/qc/removed_cells.h5ad``),
        or ``None``: then ``doublets off`` (removal configured on) and a looser
        ``min_fraction`` add them back instead of being ``not recomputable``.
    x
        Returns the log-normalised ``X`` for an ``adata`` read without it (e.g.
        :func:`marker_x` on the file: its marker columns only): called once, for the settings that
        annotate again (:data:`ANNOTATION_SETTINGS`, which come first), and let go after them,
        so the other settings hold the counts only (at 100k cells, X and the counts held
        throughout took the job to 6.4x the counts). ``None``: ``adata.X``.
    labels
        The annotation settings' labels made beforehand (:func:`label_settings`, e.g. read by
        :func:`read_label_settings`); then ``panel``, ``x`` and the annotation settings' lists
        are not used. ``None``: made here.
    annotate_options
        Keyword arguments of :func:`tmeflow.annotate.annotate` as configured
        (``species_mode``, ``min_score``, ``min_margin``, ``subcluster_resolution``,
        ``n_neighbors``, ``seed``, ``min_subcluster_cells``, ``refine_fraction``,
        ``refine_resolution``).
    confirm_options
        Keyword arguments of :func:`tmeflow.stats.confirm` (``reference``, ``test``...);
        ``shrink`` and ``fits`` are set here.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`SENSITIVITY_COLUMNS`, the configured setting first. ``verdict`` is
        the confirmatory one, or :data:`NOT_RECOMPUTABLE` / :data:`NOT_AVAILABLE` with the
        ``reason``; ``n_cells_changed`` counts the configured cells removed or given another
        cell type or subtype, and the removed cells added back. The time each setting took
        is logged (not in the table, whose bytes depend only on the data).
    """
    options = {**confirm_options, "shrink": False}
    removed = functools.cache(removed) if removed is not None else None  # read once
    caches: dict[bool, dict] = {True: {}, False: {}}  # raw counts / another layer
    base_labels = _fingerprint(adata)
    rows: list[dict] = []
    t_start = t0 = time.perf_counter()
    base, _ = confirmatory.confirm(adata, hypotheses, fits=caches[True], **options)
    logger.info("configured: %.1f s", time.perf_counter() - t0)
    if labels is None:
        labels = label_settings(
            adata,
            panel,
            resolutions=resolutions,
            min_scores=min_scores,
            min_margins=min_margins,
            subcluster_resolutions=subcluster_resolutions,
            min_subcluster_cells=min_subcluster_cells,
            marker_out=marker_out,
            annotate_options=annotate_options,
            x=x,
        )
    rows.extend(_rows(Setting(CONFIGURED, "as run"), base, adata.n_obs, 0, labels.configured_note))
    tried = labels.settings() + settings(
        adata,
        resolutions=(),
        min_scores=(),
        min_margins=(),
        min_fractions=min_fractions,
        min_fraction=min_fraction,
        de_min_cells=de_min_cells,
        configured_min_cells=int(confirm_options.get("min_cells", 10)),
        de_methods=de_methods,
        configured_method=str(confirm_options.get("de_method", METHOD_PYDESEQ2)),
        annotate_options={"species_mode": annotate_options.get("species_mode")},
        doublets=doublets,
        ambient=ambient,
    )
    if subtypes:
        tried += subtype_settings(adata, hypotheses)
    for setting in tried:
        t0 = time.perf_counter()
        variant = None  # the previous setting's object is let go
        gc.collect()
        if setting.name in ANNOTATION_SETTINGS:
            variant = labels.variant(adata, setting)
        else:
            variant = _apply(adata, setting, min_fraction, doublets, ambient_layer, removed)
        if variant.adata is None:
            logger.info("%s: %s (%s)", setting.label, variant.verdict, variant.reason)
            rows.extend(_uncomputed(setting, hypotheses, variant))
            continue
        changed = _n_changed(adata, variant.adata)
        same_test = variant.raw_counts and not variant.confirm_options
        if same_test and _fingerprint(variant.adata) == base_labels:
            note = "; ".join(filter(None, [variant.note, "same cells and labels as configured"]))
            rows.extend(_rows(setting, base, adata.n_obs, 0, note))
            logger.info("%s: same cells and labels as configured, rows repeated", setting.label)
            continue
        # the fits cache is keyed by the cells, covariates and de.min_cells of each fit
        fits = caches[variant.raw_counts]
        table, _ = confirmatory.confirm(
            variant.adata, hypotheses, fits=fits, **{**options, **variant.confirm_options}
        )
        seconds = time.perf_counter() - t0
        logger.info(
            "%s: %d cells changed, %.1f s; verdicts %s",
            setting.label,
            changed,
            seconds,
            table["verdict"].value_counts().to_dict(),
        )
        rows.extend(_rows(setting, table, variant.adata.n_obs, changed, variant.note))
    logger.info("sensitivity: %d settings in %.1f s", 1 + len(tried), time.perf_counter() - t_start)
    out = pd.DataFrame(rows, columns=SENSITIVITY_COLUMNS)
    for col in ("effect", "ci_low", "ci_high", "pvalue", "p_holm"):
        out[col] = out[col].astype(float)
    out["loo_sign_stable"] = out["loo_sign_stable"].astype("boolean")
    for col in ("n_cells", "n_cells_changed"):
        out[col] = out[col].astype("Int64")
    return out


def verdict_grid(table: pd.DataFrame) -> pd.DataFrame:
    """Hypotheses (rows, in order) x settings (columns ``<setting> <value>``, in order)."""
    label = table["setting"].astype(str) + " " + table["value"].astype(str)
    label = label.where(table["setting"] != CONFIGURED, CONFIGURED)
    grid = table.assign(_label=label).pivot(index="hypothesis", columns="_label", values="verdict")
    grid = grid.loc[pd.unique(table["hypothesis"]), pd.unique(label)]
    grid.index.name, grid.columns.name = "hypothesis", "setting"
    return grid


#: Files of :class:`LabelSettings` (``results/sensitivity/``): one column per setting and label.
_SEP = "|"


@dataclass
class LabelSettings:
    """The cells' labels under each annotation setting (:func:`label_settings`).

    ``labels``: one row per cell (index: the cells of ``annotated.h5ad``), one column
    ``<setting label>|<obs key>`` per setting computed and label key (``cell_type``,
    ``cell_subtype``, ``cell_state``). ``notes``: one row per setting in table order, the
    configured one first (``setting``, ``value``, ``note``, ``verdict``, ``reason``; ``verdict``
    is empty for a computed setting, else :data:`NOT_AVAILABLE` and the ``reason``).
    """

    labels: pd.DataFrame
    notes: pd.DataFrame

    @property
    def configured_note(self) -> str:
        first = self.notes.iloc[0] if len(self.notes) else None
        return str(first["note"]) if first is not None and first["setting"] == CONFIGURED else ""

    def settings(self) -> list[Setting]:
        """The annotation settings, in table order (the configured one left out)."""
        rows = self.notes[self.notes["setting"] != CONFIGURED]
        return [
            Setting(str(n), str(v)) for n, v in zip(rows["setting"], rows["value"], strict=True)
        ]

    def variant(self, adata: AnnData, setting: Setting) -> _Variant:
        """``adata`` (same cells) with the setting's labels, or why there is none."""
        row = self.notes[
            (self.notes["setting"] == setting.name) & (self.notes["value"] == _value(setting.value))
        ]
        if row.empty:
            raise KeyError(f"no labels for the sensitivity setting {setting.label!r}")
        rec = row.iloc[0]
        if rec["verdict"]:
            return _Variant(None, verdict=str(rec["verdict"]), reason=str(rec["reason"]))
        if not self.labels.index.equals(adata.obs_names):
            raise ValueError(
                "the sensitivity labels are of other cells than the annotated object "
                f"({self.labels.shape[0]} vs {adata.n_obs} cells, or another order): "
                "re-run the sensitivity_labels job"
            )
        work = _shallow(adata)
        for key in _LABELS:
            col = f"{setting.label}{_SEP}{key}"
            if col in self.labels:
                work.obs[key] = pd.Categorical(self.labels[col].to_numpy())
        return _Variant(work, note=str(rec["note"]))

    def extend(self, setting: Setting, labels: pd.DataFrame, note: str) -> "LabelSettings":
        """A copy with one more setting.

        ``labels``: one row per cell of :attr:`labels`, in the same order, columns of the label
        keys (e.g. a retraining setting's, :func:`tmeflow.stats.retrain_labels`); ``note``: what
        the setting did.
        """
        if not labels.index.equals(self.labels.index):
            raise ValueError(
                f"the labels of {setting.label!r} are of other cells than the annotation "
                f"settings' ({labels.shape[0]} vs {self.labels.shape[0]} cells, or another "
                "order)"
            )
        cols = {f"{setting.label}{_SEP}{k}": labels[k].astype(str) for k in _LABELS if k in labels}
        row = {"setting": setting.name, "value": _value(setting.value), "note": note,
               "verdict": "", "reason": ""}  # fmt: skip
        merged = pd.concat([self.labels, pd.DataFrame(cols, index=labels.index)], axis=1)
        notes = pd.concat([self.notes, pd.DataFrame([row])], ignore_index=True)
        return LabelSettings(merged, notes)

    def write(
        self, labels_path: str | os.PathLike[str], notes_path: str | os.PathLike[str]
    ) -> None:
        """``labels.tsv.gz`` (cell + one column per setting and key) and ``label_settings.tsv``."""
        write_tsv(self.labels.rename_axis("cell"), labels_path, index=True)
        write_tsv(self.notes, notes_path)

    @classmethod
    def read(
        cls,
        labels_path: str | os.PathLike[str],
        notes_path: str | os.PathLike[str],
        retrain: Sequence[tuple[str | os.PathLike[str], str | os.PathLike[str]]] = (),
    ) -> "LabelSettings":
        """What :meth:`write` wrote, with the retraining settings after it.

        Labels are read as text (empty strings kept); ``retrain``: ``sensitivity_retrain``'s
        (labels, note) files, in table order.
        """
        out = cls(_read_labels(labels_path), pd.read_csv(notes_path, **_READ))
        for labels_file, note_file in retrain:
            note = pd.read_csv(note_file, **_READ).iloc[0]
            setting = Setting("retrain", str(note["variant"]))
            out = out.extend(setting, _read_labels(labels_file), str(note["note"]))
        return out


_READ = {"sep": "\t", "dtype": str, "keep_default_na": False}


def _read_labels(path: str | os.PathLike[str]) -> pd.DataFrame:
    labels = pd.read_csv(path, index_col=0, **_READ)
    labels.index = labels.index.astype(str)
    labels.index.name = None
    return labels


def label_settings(
    adata: AnnData,
    panel: dict,
    *,
    resolutions: Sequence[float] = (),
    min_scores: Sequence[float] = (),
    min_margins: Sequence[float] = (),
    subcluster_resolutions: Sequence[float] = (),
    min_subcluster_cells: Sequence[int] = (),
    marker_out: Sequence[str] = (),
    annotate_options: Mapping,
    x: Callable[[], Any] | None = None,
) -> LabelSettings:
    """The labels of every cell under each annotation setting (:data:`ANNOTATION_SETTINGS`).

    ``adata`` as for :func:`sensitivity` (``X`` or ``x`` for the marker scores, the graph,
    ``obsm['X_scVI']``, ``uns['cluster']``); not modified. ``x`` is called once and its matrix
    let go on return. Leave-one-marker-out: every marker of each cell type in ``marker_out``
    and of its subtypes (:func:`marker_out_settings`).
    """
    annotated = _with_x(adata, x)
    notes = [
        {
            "setting": CONFIGURED,
            "value": "as run",
            "note": _reproduction_note(annotated, panel, annotate_options),
            "verdict": "",
            "reason": "",
        }
    ]
    columns: dict[str, np.ndarray] = {}
    tried = settings(
        adata,
        resolutions=resolutions,
        min_scores=min_scores,
        min_margins=min_margins,
        subcluster_resolutions=subcluster_resolutions,
        min_subcluster_cells=min_subcluster_cells,
        min_fractions=(),
        min_fraction=0.5,
        annotate_options=annotate_options,
        doublets=True,
        ambient=False,
    )
    tried = [t for t in tried if t.name in ANNOTATION_SETTINGS]
    skipped = marker_out_settings(panel, marker_out, adata.var_names)
    tried += [Setting("marker_out", v) for v in skipped]
    work: AnnData | None = None
    for setting in tried:
        t0 = time.perf_counter()
        work = None  # the previous setting's object is let go
        gc.collect()  # annotation leaves views in reference cycles (see sensitivity)
        why = skipped.get(setting.value, "") if setting.name == "marker_out" else ""
        rec = {"setting": setting.name, "value": _value(setting.value), "verdict": "", "reason": ""}
        if why.startswith(NOT_AVAILABLE):
            notes.append(
                {**rec, "note": "", "verdict": NOT_AVAILABLE, "reason": why.split(": ", 1)[1]}
            )
            continue
        if why:  # a marker the data does not hold: the configured labels
            work, note = adata, why
        else:
            work, note = _relabel(annotated, setting, panel, annotate_options)
        for key in _LABELS:
            if key in work.obs:
                columns[f"{setting.label}{_SEP}{key}"] = work.obs[key].astype(str).to_numpy()
        notes.append({**rec, "note": note})
        logger.info("%s labels: %.1f s", setting.label, time.perf_counter() - t0)
    work = annotated = None
    gc.collect()
    labels = pd.DataFrame(columns, index=adata.obs_names.copy())
    return LabelSettings(labels, pd.DataFrame(notes, columns=list(notes[0])))


def marker_out_settings(panel: dict, cell_types: Sequence[str], genes: Sequence[str]) -> dict:
    """``"<label>:<marker>"`` -> "" (to annotate) or why not, for each marker to leave out.

    ``label`` is a cell type of ``cell_types`` or ``<cell type>/<subtype>``. A marker the data
    does not hold leaves the labels as configured (its value says so, nothing is annotated); the
    only marker of an entry is not left out (``not available: ...``). A cell type that is not
    in the panel raises (the config names it).
    """
    entries = panel.get("cell_types", {})
    held = set(map(str, genes))
    out: dict[str, str] = {}
    for cell_type in cell_types:
        if cell_type not in entries:
            raise ValueError(
                f"sensitivity.marker_out names {cell_type!r}, which is not a cell type of the "
                f"panel ({', '.join(sorted(entries))}); remove it or add it to the panel"
            )
        entry = entries[cell_type]
        sets = [(cell_type, list(entry.get("markers") or []))]
        sets += [(f"{cell_type}/{sub}", list(e.get("markers") or []))
                 for sub, e in (entry.get("subtypes") or {}).items()]  # fmt: skip
        for label, markers in sets:
            for marker in markers:
                key = f"{label}:{marker}"
                if len(markers) == 1:
                    out[key] = f"{NOT_AVAILABLE}: {marker} is the only marker of {label}"
                elif marker not in held:
                    out[key] = f"{marker} is not among the data's genes: the configured labels"
                else:
                    out[key] = ""
    return out


def _without_marker(panel: dict, label: str, marker: str) -> dict:
    """A copy of ``panel`` whose entry ``label`` (``type`` or ``type/subtype``) lacks ``marker``."""
    out = copy.deepcopy(panel)
    cell_type, _, sub = label.partition("/")
    entry = out["cell_types"][cell_type]
    if sub:
        entry = entry["subtypes"][sub]
    entry["markers"] = [m for m in entry["markers"] if m != marker]
    return out


def settings(
    adata: AnnData,
    *,
    resolutions: Sequence[float],
    min_scores: Sequence[float],
    min_margins: Sequence[float],
    min_fractions: Sequence[float],
    min_fraction: float,
    annotate_options: Mapping,
    doublets: bool,
    ambient: bool,
    subcluster_resolutions: Sequence[float] = (),
    min_subcluster_cells: Sequence[int] = (),
    de_min_cells: Sequence[int] = (),
    configured_min_cells: int = 10,
    de_methods: Sequence[str] = (),
    configured_method: str = METHOD_PYDESEQ2,
) -> list[Setting]:
    """The settings to try, in table order (a configured value is not repeated)."""
    used = float(adata.uns.get("cluster", {}).get("resolution", np.nan))
    out = [Setting("resolution", float(r)) for r in sorted(set(map(float, resolutions)))
           if not np.isclose(r, used)]  # fmt: skip
    for name, values in (
        ("min_score", min_scores),
        ("min_margin", min_margins),
        ("subcluster_resolution", subcluster_resolutions),
        ("min_subcluster_cells", min_subcluster_cells),
    ):
        cast = int if name == "min_subcluster_cells" else float
        out += [
            Setting(name, cast(v))
            for v in sorted(set(map(cast, values)))
            if name in annotate_options and not np.isclose(v, float(annotate_options[name]))
        ]
    if annotate_options.get("species_mode") == "xenograft":
        out += [
            Setting("min_fraction", float(v))
            for v in sorted(set(map(float, min_fractions)))
            if not np.isclose(v, min_fraction)
        ]
    out.append(Setting("doublets", "off" if doublets else "on"))
    if doublets:
        out.append(Setting("doublets", EITHER_CALLER))
    if ambient:
        out.append(Setting("ambient_correction", "on"))
    out += [
        Setting("de_min_cells", int(v))
        for v in sorted(set(map(int, de_min_cells)))
        if int(v) != configured_min_cells
    ]
    out += [Setting("de_method", str(m)) for m in dict.fromkeys(de_methods)
            if str(m) != configured_method]  # fmt: skip
    return out


def subtype_settings(
    adata: AnnData, hypotheses: Sequence[confirmatory.Hypothesis]
) -> list[Setting]:
    """The subtype settings of the ``change`` hypotheses, in table order.

    ``subtype_mix adjusted``, then ``within_subtype <s>`` for the subtypes of every cell type
    that a ``change`` hypothesis names and whose cells have at least two subtypes
    (``cell_subtype``; a cell without one carries its type's label). None when no such type.
    """
    if not {"cell_type", "cell_subtype"} <= set(adata.obs.columns):
        return []
    types = adata.obs["cell_type"].astype(str)
    subs = adata.obs["cell_subtype"].astype(str)
    parents = dict.fromkeys(h.cell_type for h in hypotheses if h.kind == "change")
    within: list[str] = []
    for parent in parents:
        mine = subs[(types == parent).to_numpy()]
        present = sorted(set(mine), key=natural_key)
        if len(present) >= 2:
            within += [s for s in present if s != parent and s not in within]
    if not within:
        return []
    return [Setting("subtype_mix", "adjusted"), *(Setting("within_subtype", s) for s in within)]


def _apply(
    adata: AnnData,
    setting: Setting,
    min_fraction: float,
    doublets: bool,
    ambient_layer: Callable[[], Any] | None = None,
    removed: Callable[[], AnnData | None] | None = None,
) -> _Variant:
    """A setting that changes cells, counts or tests (the labels are the configured ones)."""
    name, value = setting.name, setting.value
    if name == "subtype_mix":
        return _Variant(
            adata,
            note=(
                "change hypotheses on a cell type with subtypes: the animals' subtype shares "
                "as covariates"
            ),
            confirm_options={"subtype_mix": True},
        )
    if name == "within_subtype":
        return _Variant(
            adata,
            note=f"change hypotheses on the parent type of {value}: its {value} cells only",
            confirm_options={"within_subtype": str(value)},
        )
    if name == "de_min_cells":
        return _Variant(
            adata,
            note=f"de.min_cells {value}: an animal's pseudobulk needs {value} cells of the group",
            confirm_options={"min_cells": int(value)},
        )
    if name == "de_method":
        return _Variant(
            adata,
            note=f"change hypotheses tested with {_DE_METHOD_NOTES.get(str(value), value)}",
            confirm_options={"de_method": str(value)},
        )
    if name == "min_fraction":
        return _species(adata, float(value), min_fraction, removed)
    if name == "doublets" and value == EITHER_CALLER:
        return _either_caller(adata)
    if name == "doublets":
        return _doublets(adata, doublets, removed)
    if name == "ambient_correction":
        return _ambient(adata, ambient_layer)
    raise ValueError(f"unknown sensitivity setting {name!r}")


def _relabel(
    adata: AnnData, setting: Setting, panel: dict, annotate_options: Mapping
) -> tuple[AnnData | None, str]:
    """An annotation setting applied to ``adata`` (with ``X``): a new object, and its note."""
    name, value = setting.name, setting.value
    if name == "resolution":
        work = _shallow(adata)
        uns = adata.uns.get("cluster", {})
        cluster.leiden(work, resolution=float(value), seed=int(uns.get("seed", 0)))
        n = work.obs["leiden"].nunique()
        _annotate(work, panel, annotate_options)
        return work, f"Leiden {value:g} on the existing graph: {n} clusters"
    if name in _ANNOTATION_OPTIONS:
        work = _shallow(adata)
        cast = int if name == "min_subcluster_cells" else float
        _annotate(work, panel, {**annotate_options, name: cast(value)})
        return work, f"annotation {name} {value:g}"
    if name == "marker_out":
        label, marker = str(value).rsplit(":", 1)
        work = _shallow(adata)
        _annotate(work, _without_marker(panel, label, marker), annotate_options)
        return work, f"{marker} left out of the {label} markers"
    raise ValueError(f"unknown annotation setting {name!r}")


def _species(
    adata: AnnData,
    value: float,
    configured: float,
    removed: Callable[[], AnnData | None] | None = None,
) -> _Variant:
    if value < configured:
        back = removed() if removed is not None else None
        if back is None or "human_fraction" not in back.obs:
            return _Variant(
                None,
                verdict=NOT_RECOMPUTABLE,
                reason=(
                    f"a looser threshold than {configured:g} only brings back cells called "
                    "mixed, which QC removed before integration; rerun with "
                    f"species_calling.min_fraction: {value:g}"
                ),
            )
        frac = back.obs["human_fraction"].to_numpy(float)
        majority = np.fmax(frac, 1 - frac)
        sel = (
            back.obs["removed_mixed_species"].to_numpy(bool)
            & ~back.obs["removed_doublet"].to_numpy(bool)
            & (majority >= value)
        )
        if "crossspecies_doublet" in back.obs:  # the count-based call does not move
            sel &= ~back.obs["crossspecies_doublet"].astype("boolean").fillna(False).to_numpy(bool)
        return _Variant(
            _add_cells(adata, back[sel]),
            note=(
                f"{int(sel.sum())} cells QC removed as mixed with a majority-species fraction "
                f"of {value:g} to {configured:g} added back, labelled by their nearest kept "
                "cells (results/qc/removed_cells.tsv.gz)"
            ),
        )
    if "human_fraction" not in adata.obs:
        return _Variant(
            None, verdict=NOT_RECOMPUTABLE, reason="obs has no 'human_fraction' (species call)"
        )
    frac = adata.obs["human_fraction"].to_numpy(float)
    majority = np.fmax(frac, 1 - frac)  # NaN (no UMI of either species) stays out
    keep = majority >= value
    return _Variant(
        _cells(adata, keep),
        note=(
            f"{int((~keep).sum())} cells below a majority-species fraction of {value:g} "
            "become mixed and are removed (other labels kept)"
        ),
    )


def _doublets(
    adata: AnnData, configured: bool, removed: Callable[[], AnnData | None] | None = None
) -> _Variant:
    back = removed() if configured and removed is not None else None
    if back is not None:
        sel = back.obs["removed_doublet"].to_numpy(bool) & ~back.obs[
            "removed_mixed_species"
        ].to_numpy(bool)
        return _Variant(
            _add_cells(adata, back[sel]),
            note=(
                f"doublet removal off: {int(sel.sum())} cells QC removed as doublets (and for "
                "nothing else) added back, labelled by their nearest kept cells "
                "(results/qc/removed_cells.tsv.gz)"
            ),
        )
    if configured:
        return _Variant(
            None,
            verdict=NOT_RECOMPUTABLE,
            reason=(
                "doublet removal off: QC removed the doublets before integration (qc.doublets: "
                "true); rerun with qc.doublets: false"
            ),
        )
    flagged = adata.obs.get("predicted_doublet")
    if flagged is None:
        return _Variant(
            None,
            verdict=NOT_RECOMPUTABLE,
            reason=(
                "doublet removal on: Scrublet did not run (qc.doublets: false), so no cell is "
                "flagged; rerun with qc.doublets: true"
            ),
        )
    keep = ~flagged.fillna(False).to_numpy(bool)
    return _Variant(
        _cells(adata, keep), note=f"doublet removal on: {int((~keep).sum())} flagged cells removed"
    )


def _either_caller(adata: AnnData) -> _Variant:
    """Stricter doublet removal: drop kept cells that either caller called on its own."""
    calls = [c for c in DOUBLET_CALLS if c in adata.obs]
    if not calls:
        return _Variant(
            None,
            verdict=NOT_RECOMPUTABLE,
            reason=f"obs has none of {', '.join(DOUBLET_CALLS)} (the callers' own calls)",
        )
    flagged = np.zeros(adata.n_obs, dtype=bool)
    for col in calls:
        flagged |= adata.obs[col].astype("boolean").fillna(False).to_numpy(bool)
    return _Variant(
        _cells(adata, ~flagged),
        note=(
            f"{int(flagged.sum())} kept cells called by {' or '.join(calls)} alone are removed "
            "(labels of the others kept)"
        ),
    )


def _ambient(adata: AnnData, load: Callable[[], Any] | None = None) -> _Variant:
    if load is not None:
        mat = load()  # read now, and ours to round in place
    elif AMBIENT_LAYER in adata.layers:
        mat = adata.layers[AMBIENT_LAYER].copy()
    else:
        mat = None
    if mat is None:
        return _Variant(
            None,
            verdict=NOT_AVAILABLE,
            reason=f"the annotated object has no layers[{AMBIENT_LAYER!r}]",
        )
    work = _shallow(adata)
    work.layers.pop(AMBIENT_LAYER, None)
    data = mat.data if sp.issparse(mat) else np.asarray(mat)
    note = f"gene hypotheses on layers[{AMBIENT_LAYER!r}]"
    if _round_in_place(data):
        note += " (rounded to integers)"
        logger.warning("ambient_correction: %s holds non-integer values; rounded", AMBIENT_LAYER)
    np.maximum(data, 0, out=data)
    work.layers["counts"] = mat
    return _Variant(work, note=note, raw_counts=False)


def _round_in_place(values: np.ndarray, block: int = ROW_SUM_BLOCK) -> bool:
    """Round ``values`` to integers in place, a block at a time; whether any value changed.

    Integer arrays are left as they are. A whole-array ``np.round`` would hold a second copy of
    the layer's values (at 100k cells, hundreds of MB) next to it; that is still the way for an
    array that is not C-contiguous (a dense layer in another order), whose flat form would be a
    copy instead of a view.
    """
    if values.dtype.kind in "iub":
        return False
    if not values.flags.c_contiguous:
        rounded = np.round(values)
        changed = not np.array_equal(values, rounded)
        values[...] = rounded
        return changed
    flat = values.reshape(-1)
    changed = False
    for start in range(0, flat.size, block):
        part = flat[start : start + block]
        rounded = np.round(part)
        changed = changed or not np.array_equal(part, rounded)
        part[...] = rounded
    return changed


def marker_x(path: str | os.PathLike[str], adata: AnnData, panel: dict) -> sp.csr_matrix:
    """The log-normalised ``X`` of the annotated file as the re-annotation needs it.

    Annotation reads ``X`` only for the marker scores (:func:`tmeflow.annotate._scoring.
    score_cells`) when ``obsm["X_scVI"]`` holds the embedding its re-clustering uses: then
    only the panel's marker columns are read (:func:`tmeflow.core.read_rows`), in a matrix of
    ``X``'s shape whose other columns are empty, and the scores are the same. Without
    ``X_scVI`` the re-clustering runs a PCA of ``X``, so the whole ``X`` is read.
    """
    if "X_scVI" not in adata.obsm:
        return h5ad.read_matrix(path, "X")
    genes = {g for markers in panel_mod.all_markers(panel).values() for g in markers}
    cols = np.flatnonzero(adata.var_names.isin(list(genes)))
    part = h5ad.read_rows(path, "X", np.arange(adata.n_obs), cols)
    return sp.csr_matrix((part.data, cols[part.indices], part.indptr), shape=adata.shape)


def _with_x(adata: AnnData, x: Callable[[], Any] | None) -> AnnData:
    """``adata`` itself, or (``x`` given) a shallow copy holding the ``X`` that ``x`` reads."""
    if x is None:
        return adata
    work = _shallow(adata)
    work.X = x()
    return work


def _cells(adata: AnnData, keep: np.ndarray) -> AnnData:
    """The cells ``keep`` as a new object with their counts layers, ``obs`` and ``obsm``.

    For the settings that remove cells and keep the others' labels: the tests read only the
    counts, so ``X`` and the graph are left out, and the counts are copied once here (a view
    would copy its rows again at each hypothesis that reads the counts). When ``keep`` keeps
    every cell nothing is copied (:func:`_shallow`).
    """
    if keep.all():
        return _shallow(adata)
    return AnnData(
        obs=adata.obs[keep].copy(),
        var=adata.var,
        uns=dict(adata.uns),
        obsm={k: np.asarray(v)[keep] for k, v in adata.obsm.items()},
        layers={k: v[keep] for k, v in adata.layers.items()},
    )


def _add_cells(adata: AnnData, extra: AnnData) -> AnnData:
    """``adata``'s cells (counts, ``obs``) with the removed cells ``extra`` appended.

    ``extra`` (:func:`tmeflow.cells.recomputable_removed`) holds counts on the same genes and
    the ``obs`` columns it could fill; the others are missing for its cells. The tests read
    only the raw counts and ``obs``.
    """
    if extra.n_obs == 0:
        return _shallow(adata)
    if not extra.var_names.equals(adata.var_names):
        msg = "the removed cells' genes differ from the annotated object's"
        raise ValueError(msg)
    obs = pd.concat([adata.obs, extra.obs[[c for c in extra.obs if c in adata.obs]]])
    for col in adata.obs.columns:
        if isinstance(adata.obs[col].dtype, pd.CategoricalDtype):
            obs[col] = obs[col].astype(str).where(obs[col].notna()).astype("category")
    counts = sp.vstack(
        [sp.csr_matrix(adata.layers["counts"]), sp.csr_matrix(extra.layers["counts"])],
        format="csr",
    )
    return AnnData(obs=obs, var=adata.var, uns=dict(adata.uns), layers={"counts": counts})


def _shallow(adata: AnnData) -> AnnData:
    """A new AnnData sharing the matrices of ``adata`` with copies of ``obs`` and ``uns``."""
    return AnnData(
        X=adata.X,
        obs=adata.obs.copy(),
        var=adata.var,
        uns=dict(adata.uns),
        obsm=dict(adata.obsm),
        obsp=dict(adata.obsp),
        layers=dict(adata.layers),
    )


def _annotate(adata: AnnData, panel: dict, options: Mapping) -> None:
    annotate_mod.annotate(adata, panel, cluster_key="leiden", **options)


def _reproduction_note(adata: AnnData, panel: dict, options: Mapping) -> str:
    """How many labels annotating the stored clustering again reproduces (the others' noise)."""
    if "leiden" not in adata.obs or "neighbors" not in adata.uns:
        return ""
    work = _shallow(adata)
    _annotate(work, panel, options)
    n = _n_changed(adata, work)
    logger.info("re-annotating the configured clustering changes %d of %d labels", n, adata.n_obs)
    return f"annotating the configured clustering again changes {n} of {adata.n_obs} cells"


def _fingerprint(adata: AnnData) -> tuple:
    obs = adata.obs
    return (
        tuple(adata.obs_names),
        *(tuple(obs[k].astype(str)) if k in obs else () for k in _LABELS),
    )


def _n_changed(base: AnnData, other: AnnData) -> int:
    """Configured cells removed or with another cell type or subtype, and cells added back."""
    kept = base.obs_names.isin(other.obs_names)
    n = int((~kept).sum()) + int((~other.obs_names.isin(base.obs_names)).sum())
    names = base.obs_names[kept]
    diff = np.zeros(names.size, dtype=bool)
    for key in _LABELS:
        if key in base.obs and key in other.obs:
            diff |= (
                base.obs.loc[names, key].astype(str).to_numpy()
                != other.obs.loc[names, key].astype(str).to_numpy()
            )
    return n + int(diff.sum())


_FROM_CONFIRM = ("hypothesis", "verdict", "effect", "ci_low", "ci_high", "effect_scale", "pvalue",
                 "p_holm", "loo_sign_stable", "reason")  # fmt: skip


def _rows(
    setting: Setting, table: pd.DataFrame, n_cells: int, changed: int, note: str
) -> list[dict]:
    head = {"setting": setting.name, "value": _value(setting.value)}
    tail = {"n_cells": n_cells, "n_cells_changed": changed, "note": note}
    return [{**head, **rec, **tail} for rec in table[list(_FROM_CONFIRM)].to_dict("records")]


def _uncomputed(
    setting: Setting, hypotheses: Sequence[confirmatory.Hypothesis], variant: _Variant
) -> list[dict]:
    return [
        {
            "setting": setting.name,
            "value": _value(setting.value),
            "hypothesis": f"H{k}: {h.label}",
            "verdict": variant.verdict,
            "effect_scale": "",
            "reason": variant.reason,
            "note": "",
        }
        for k, h in enumerate(hypotheses, start=1)
    ]


def _value(value: float | str) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)
