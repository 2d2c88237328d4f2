"""Pre-specified hypotheses tested as one family: the confirmatory table.

The genome-wide tables (:mod:`tmeflow.stats._de`, :mod:`tmeflow.stats._composition`) are
exploratory: a gene named before the data were seen should not pay for the ~20,000 genes nobody
asked about. Here each hypothesis of the config's ``hypotheses`` list is tested once, and the family
is that list: Holm's step-down adjustment (Holm 1979, Scand J Statist 6:65) over the whole list (a
hypothesis that turns out not testable still counts, see below) controls the family-wise error (the
chance of calling any true null "supported") at ``alpha`` whatever the dependence between the
tests, as far as each test is exact. The workflow passes the config's ``hypotheses_alpha``, 0.04 by
default: over calibrated tests under the complete null Holm errs at about
``1 - (1 - alpha / m) ** m`` (0.049 at 0.05), so at 0.05 the measured family-wise error reached
0.043-0.047 (upper 95% bounds 0.053-0.057, change rows by PyDESeq2); at 0.04 every upper bound
is below 0.05 (``bench/confirmatory_calibration.tsv``).

Five kinds of hypothesis:

``change`` (``gene`` + ``test: change``)
    The gene's expression in the cell type (or subtype) differs between the arms, tested on
    that group's per-animal pseudobulk by ``de_method``. ``pydeseq2`` (this function's default;
    :func:`tmeflow.stats.run_de`, the same test as the exploratory tables): ``effect`` =
    apeGLM-shrunk log2 fold change with its 95% interval (shrunk estimate +- 1.96 shrunk SE),
    ``pvalue`` = the Wald test. ``limma_voom`` (the workflow's default, config
    ``hypotheses_de_method``; :mod:`tmeflow.stats._voom`): the unshrunk log2 fold change and the
    moderated t. PyDESeq2's Wald test rejects 1.2-1.4x nominally at 0.01 at 3-6 animals per arm
    (its dispersion's own error is not carried into the test; over every null gene of 200
    simulated experiments 0.012-0.014 at 0.01, 0.051-0.057 at 0.05), limma-voom's moderated
    t does not (0.048-0.053 and 0.0097-0.0104 at 2-6 animals per arm;
    ``bench/change_calibration_genomewide.tsv``, the one-gene rates in
    ``bench/change_calibration.tsv``). Either is one-sided in the stated ``direction``
    (two-sided without one). ``padj_exploratory`` is the same gene's
    BH ``padj`` among all genes of the group (the exploratory table's), for comparison.
``source`` (``gene`` + ``test: source``)
    The cell type is an *enriched* source of the gene: it makes a larger share of the gene's UMIs
    than of all UMIs (an abundant type making its share of a uniformly expressed gene is not a
    source). Per animal (both arms), on ambient-corrected counts (the raw counts minus
    :func:`tmeflow.cells.gene_ambient`'s other-species and soup UMIs, as in
    :mod:`tmeflow.stats._expression_sources`) and over the cells of the gene's species: ``k`` of the
    gene's ``K`` UMIs in the type, ``pi`` = the type's share of all UMIs; ``effect`` = mean over
    animals of ``log2(((k + pi) / (K + 1)) / pi)`` (the +pi/+1 pulls a ratio resting on few UMIs
    towards 1, so a barely detected gene is not a source); one-sided one-sample t-test that it is
    above 0. The per-animal values are the ratios ``(k / K) / pi``. A type whose UMIs of the gene
    are mostly ambient (``ambient_explained`` > :data:`MAX_AMBIENT_EXPLAINED`) is ``inconclusive``.
    A source hypothesis is about presence, not change: the gene's change is a separate ``change``
    entry.
``main_sources`` (``gene`` + ``test: main_sources`` + ``groups``)
    The listed groups *together* make most of the gene's stromal UMIs: more than ``share``
    (default :data:`MAIN_SHARE`, one half). Per animal (both arms), on the same
    ambient-corrected counts as ``source``, over the cells of the gene's species that are not
    ``tumor``: ``s`` = the groups' share of those UMIs (``k`` of ``K``); ``effect`` = mean over
    animals of ``logit((k + 0.5) / (K + 1)) - logit(share)``, one-sided one-sample t-test that
    it is above 0, interval on that scale; the per-animal values are the shares ``k / K``. A
    group may be a cell type or a subtype (``CAF`` and ``TAM_Mrc1``); cells in several listed
    groups count once. Mostly ambient UMIs in the groups make the row ``inconclusive``, as
    for ``source``.
``interaction`` (``interaction: Gas6-AXL`` + ``sender`` + ``receiver``)
    The ligand-receptor score from the sender group to the receiver group changes between the
    arms (``direction`` optional; a mouse ligand to a human receptor in a xenograft): per animal,
    ``score = sqrt(L * R)``, ``L`` the ligand's mean log1p CP10k in the sender's cells, ``R`` the
    receptor's in the receiver's (a complex: its lowest subunit), on ambient-corrected counts
    (:func:`tmeflow.stats.animal_scores`: ``layers['counts_ambient_corrected']`` when loaded,
    else the raw counts minus :func:`tmeflow.cells.gene_ambient` per gene); ``effect`` = mean
    test score minus mean reference score, Welch's t, one-sided with a ``direction``. A ligand
    whose raw UMIs in the sender are mostly ambient makes the row ``inconclusive``.
``proportion`` (``proportion: stroma|immune|all|within_<parent>``)
    The type's share of the denominator's cells changes (``direction`` optional): a
    quasi-binomial GLM over the animals (:func:`tmeflow.stats.quasi_binomial_test`: the
    type's cells out of the denominator's cells per animal, the arm as the factor, Pearson
    dispersion of at least 1, t on ``n_animals - 2`` df), ``effect`` = log odds ratio of the
    arms' pooled shares (test vs reference; the leave-one-animal-out range refits it without
    each animal), one-sided with a ``direction``. Not propeller: its variance shared across
    types let the pre-specified tests reject up to 13% of true nulls at 2 animals per arm
    (``bench/composition_null.py``); ``padj_exploratory`` is still the type's BH ``padj`` in
    the exploratory propeller table (:func:`tmeflow.stats.propeller`, among the
    denominator's types).
    ``within_<parent>`` (e.g. ``within_TAM`` for ``TAM_Mrc1``) is a subtype's share among its
    parent type's cells (``obs['cell_subtype']`` of the cells whose ``cell_type`` is the
    parent): an animal without any parent cell has no such share and is not counted (the
    reason names it).

Every row has a leave-one-animal-out range of the effect (``loo_min``, ``loo_max``; for
``change`` the gene's unshrunk log2 fold change refitted without the animal, comparable with
``effect_unshrunk``: a negative binomial GLM on the other animals' pseudobulk with the gene's
PyDESeq2 dispersion held fixed, see :func:`_loo_change`), ``loo_sign_stable`` and how many
animals could be left out (``loo_n_computable`` of ``loo_n_animals``). An animal cannot be
left out where its arm would keep fewer than ``min_replicates`` animals (at 2 vs 2, none can):
its left-out estimate is *not applicable*, neither instability nor stability;
``loo_sign_stable`` says whether every computable left-out estimate keeps the sign (NA when
none is computable).

Verdicts (``reason`` says why, for every row):

``supported``
    ``p_holm < alpha``, the (unshrunk) estimate in the stated direction and no computable
    left-out estimate of the other sign. Where no animal could be left out (a limit of the
    design, not evidence) the verdict rests on the test and the direction, and the reason
    says "leave-one-animal-out not applicable: no animal could be left out"; where only some
    could, it says "k of n animals".
``not supported``
    Negative evidence only: ``p_holm >= alpha``, the estimate against the direction, or a
    left-out estimate of the other sign ("sign not stable leaving one animal out").
``inconclusive``
    The data cannot answer either way: a ``source`` row whose type's UMIs of the gene are
    mostly ambient RNA, whatever its test says; a ``change`` row judged with ``loo=False``
    whose test would support it (stability was not looked at, by choice).
``not testable``
    No p-value: gene or group absent, too few animals, PyDESeq2 failed, or PyDESeq2 set the
    gene's p to NaN because of a Cook's distance outlier (the reason says which).

Every tested row has ``mde_80``: the smallest true effect (on its effect scale; the unshrunk
log2 fold change for ``change``) its test would detect with 80% power, from its own standard
error at the first step of Holm's ladder (``alpha / m``): a ``not supported`` row's reason
says it, so the reader can tell "no effect" from "this design could not have seen it".

The family is fixed when it is pre-specified: Holm's ``m`` (``holm_m``) is the number of
hypotheses, so a hypothesis that turns out not testable still counts (its ``p_holm`` is NaN;
the others pay for it). Whether a group has enough cells does not depend on the outcome, but
a Cook's outlier does, and dropping either from ``m`` would let the data choose the family.
"""

import dataclasses
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata import AnnData
from scipy import stats

from tmeflow._utils import adjust_pvalues
from tmeflow.cells import _ambient as ambient
from tmeflow.stats import _communication as communication
from tmeflow.stats import _composition as composition
from tmeflow.stats import _de_methods as de_tests
from tmeflow.stats import _voom as voom
from tmeflow.stats._de import METHOD_PYDESEQ2, DESettings
from tmeflow.stats._pseudobulk import pseudobulk, select_arms

__all__ = [
    "CONFIRMATORY_COLUMNS",
    "VALUE_COLUMNS",
    "Hypothesis",
    "confirm",
    "holm",
    "parse_hypotheses",
]

logger = logging.getLogger(__name__)

#: Columns of the confirmatory table, in order.
CONFIRMATORY_COLUMNS: list[str] = [
    "hypothesis",
    "kind",
    "gene",
    "cell_type",
    "level",
    "denominator",
    "direction",
    "effect",
    "effect_scale",
    "effect_unshrunk",
    "ci_low",
    "ci_high",
    "pvalue",
    "p_holm",
    "padj_exploratory",
    "loo_min",
    "loo_max",
    "loo_sign_stable",
    "n_animals_reference",
    "n_animals_test",
    "per_animal",
    "method",
    "verdict",
    "reason",
    "loo_n_computable",
    "loo_n_animals",
    "holm_m",
    "ambient_explained",
    "mde_80",
]
#: Columns of the per-animal values (one row per hypothesis x animal), for the figures.
VALUE_COLUMNS: list[str] = ["hypothesis", "sample", "condition", "value", "value_label", "n_cells"]

SUPPORTED, NOT_SUPPORTED = "supported", "not supported"
INCONCLUSIVE, NOT_TESTABLE = "inconclusive", "not testable"
#: The verdicts, from positive evidence to no test at all.
VERDICTS: tuple[str, ...] = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE, NOT_TESTABLE)
_Z95 = 1.959963984540054
_KINDS = ("change", "source", "main_sources", "proportion", "interaction")
#: The share of the stromal UMIs a ``main_sources`` hypothesis's groups must exceed by default.
MAIN_SHARE = 0.5
#: Prefix of a within-parent denominator: ``within_TAM`` = among the TAM cells' subtypes.
WITHIN = "within_"


@dataclass(frozen=True)
class Hypothesis:
    """One pre-specified hypothesis (an entry of the config's ``hypotheses``)."""

    kind: str  # change | source | main_sources | proportion
    cell_type: str  # main_sources: the groups joined by " + "
    gene: str | None = None
    denominator: str | None = None  # proportion only: stroma | immune | all | within_<parent>
    direction: str | None = None  # up | down | None (two-sided)
    groups: tuple[str, ...] = ()  # main_sources only
    share: float = MAIN_SHARE  # main_sources only
    receiver: str | None = None  # interaction only (cell_type is the sender, gene the pair)

    @property
    def label(self) -> str:
        """A short name: ``Mmp11 up in CAF``, ``Gas6 source: TAM``, ``TAM among stroma up``."""
        arrow = f" {self.direction}" if self.direction else " changed"
        if self.kind == "change":
            return f"{self.gene}{arrow} in {self.cell_type}"
        if self.kind == "source":
            return f"{self.gene} source: {self.cell_type}"
        if self.kind == "interaction":
            return f"{self.gene}{arrow} from {self.cell_type} to {self.receiver}"
        if self.kind == "main_sources":
            return f"{self.gene} main sources: {self.cell_type} (> {self.share:.0%} of stroma)"
        parent = (self.denominator or "").removeprefix(WITHIN)
        among = parent if self.denominator != parent else self.denominator
        return f"{self.cell_type} among {among}{arrow}"


def parse_hypotheses(entries: Sequence[dict]) -> list[Hypothesis]:
    """Turn the config's ``hypotheses`` entries into :class:`Hypothesis` objects.

    Each entry has ``cell_type`` and either ``gene`` (with ``test``: ``change``, the default,
    or ``source``) or ``proportion`` (the denominator); ``direction`` is ``up``/``down``
    (optional; not for ``source``). A ``main_sources`` entry has ``gene``, ``groups`` (the
    labels) and optionally ``share`` instead of ``cell_type``. The schema checks the shape;
    this raises on the combinations it cannot express.
    """
    out = []
    for k, entry in enumerate(entries, start=1):
        if "interaction" in entry:
            out.append(_parse_interaction(k, entry))
            continue
        has_gene, has_prop = "gene" in entry, "proportion" in entry
        if has_gene == has_prop:
            msg = f"hypotheses[{k}] {entry!r}: give exactly one of 'gene' or 'proportion'"
            raise ValueError(msg)
        direction = entry.get("direction")
        if has_gene and entry.get("test") == "main_sources":
            groups = tuple(str(g) for g in entry.get("groups") or ())
            if not groups or direction is not None or "cell_type" in entry:
                msg = (
                    f"hypotheses[{k}] {entry!r}: a main_sources hypothesis names its 'groups' "
                    "(a list of labels) and has no 'cell_type' or 'direction'"
                )
                raise ValueError(msg)
            share = float(entry.get("share", MAIN_SHARE))
            out.append(
                Hypothesis(
                    "main_sources",
                    " + ".join(groups),
                    gene=str(entry["gene"]),
                    direction="up",
                    groups=groups,
                    share=share,
                )
            )
            continue
        if has_gene:
            kind = entry.get("test", "change")
            if kind == "source" and direction is not None:
                msg = f"hypotheses[{k}] {entry!r}: a source hypothesis has no direction"
                raise ValueError(msg)
            out.append(
                Hypothesis(
                    kind, str(entry["cell_type"]), gene=str(entry["gene"]), direction=direction
                )
            )
        else:
            out.append(
                Hypothesis(
                    "proportion",
                    str(entry["cell_type"]),
                    denominator=str(entry["proportion"]),
                    direction=direction,
                )
            )
    return out


def _parse_interaction(k: int, entry: dict) -> Hypothesis:
    """Parse an ``interaction`` entry.

    Keys: ``interaction`` (``ligand-receptor``), ``sender``, ``receiver``, optional
    ``direction``; nothing else.
    """
    extra = set(entry) - {"interaction", "sender", "receiver", "direction"}
    name = str(entry["interaction"])
    if extra or not entry.get("sender") or not entry.get("receiver") or "-" not in name:
        msg = (
            f"hypotheses[{k}] {entry!r}: an interaction hypothesis has 'interaction' "
            "(ligand-receptor, e.g. Gas6-AXL), 'sender', 'receiver' and optionally 'direction'"
        )
        raise ValueError(msg)
    return Hypothesis(
        "interaction",
        str(entry["sender"]),
        gene=name,
        direction=entry.get("direction"),
        receiver=str(entry["receiver"]),
    )


def holm(pvalues: Sequence[float], m: int | None = None) -> np.ndarray:
    """Holm's step-down adjusted p-values (statsmodels); NaN entries stay NaN.

    ``m`` is the size of the family: by default the finite p-values, and at least those.
    :func:`confirm` passes the number of pre-specified hypotheses, so that a hypothesis
    that turned out untestable (NaN p) still counts: the family was fixed before the data.
    """
    return adjust_pvalues(pvalues, "holm", m=m)


def _one_sided(stat: float, direction: str | None, p_two: float, dist: object) -> float:
    """One-sided p in ``direction`` from a symmetric statistic (two-sided when None)."""
    if direction is None:
        return p_two
    return float(dist.sf(stat) if direction == "up" else dist.cdf(stat))


@dataclass(frozen=True)
class _Design:
    de: DESettings  # the contrast and the DE settings of the change hypotheses (raw counts)
    min_share: float
    immune_types: tuple[str, ...]
    loo: bool
    shrink: bool
    fits: dict = field(default_factory=dict)  # (level, group, shrink, cells, covariates,
    # min_cells) -> DE table
    tables: dict = field(default_factory=dict)  # this call's denominator proportions, once
    subtype_mix: bool = False  # change rows of a parent type: its subtypes' shares as covariates
    within_subtype: str | None = None  # change rows of this subtype's parent: its cells only


def confirm(
    adata: AnnData,
    hypotheses: Sequence[Hypothesis],
    *,
    condition_key: str = "condition",
    reference: str,
    test: str,
    min_cells: int = 10,
    min_replicates: int = 2,
    covariates: Sequence[str] = (),
    threads: int = 1,
    alpha: float = 0.05,
    min_share: float = 0.1,
    immune_types: Sequence[str] = composition.IMMUNE_TYPES,
    loo: bool = True,
    shrink: bool = True,
    fits: dict | None = None,
    subtype_mix: bool = False,
    within_subtype: str | None = None,
    de_method: str = METHOD_PYDESEQ2,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Test every pre-specified hypothesis and adjust within the family (Holm).

    Parameters
    ----------
    adata
        Annotated object: raw counts in ``layers['counts']``; ``obs`` columns ``sample``,
        ``cell_type`` (``cell_subtype`` for subtype hypotheses), ``condition_key``
        (``species`` for the ``stroma`` denominator). Cells of other arms than ``reference``
        and ``test`` are left out (:func:`~tmeflow.stats.select_arms`).
    hypotheses
        The family, from :func:`parse_hypotheses`.
    condition_key, reference, test, min_cells, min_replicates, covariates, threads
        As in :func:`tmeflow.stats.run_de`.
    alpha
        Family-wise error level of the verdicts (the workflow: ``hypotheses_alpha``, 0.04).
    min_share
        Not used since ``source`` tests enrichment (kept for the callers' options).
    immune_types
        Labels of the ``immune`` denominator.
    loo
        Compute the leave-one-animal-out range (for a ``change`` hypothesis one small GLM per
        animal, :func:`_loo_change`); without it a ``change`` hypothesis the test would support
        is ``inconclusive`` (``source`` and ``proportion`` rows always have it: it costs
        nothing there).
    shrink
        Report the apeGLM-shrunk log2 fold change of ``change`` rows (the slowest step:
        it fits every gene of the group); without it ``effect`` is the unshrunk estimate.
        P-values do not depend on it (``bench/confirmatory_calibration.py`` turns it off).
    fits
        A cache of PyDESeq2 fits, keyed by the group and its exact cells: pass the same
        dict to several calls on the *same counts* (:mod:`tmeflow.stats._sensitivity`) and a group
        whose cells did not change is not refitted. ``None``: a cache for this call only.
    subtype_mix
        ``change`` hypotheses on a cell type with subtypes (``level`` ``cell_type``): each
        animal's shares of the type's subtypes (``cell_subtype`` within the type's cells; all but
        the most common) enter the design as covariates, so a shift of the subtype mix between
        the arms is not read as a change of the gene (:mod:`tmeflow.stats._sensitivity`).
    within_subtype
        ``change`` hypotheses on the parent type of this subtype are tested on that subtype's
        cells only (the other hypotheses as configured).
    de_method
        The pseudobulk test of ``change`` hypotheses: ``"pydeseq2"`` (negative-binomial Wald
        test) or ``"limma_voom"`` (:mod:`tmeflow.stats._voom`: moderated t on its degrees of
        freedom, no shrinkage; leave-one-animal-out refits voom without the animal).

    Returns
    -------
    table
        One row per hypothesis, in order (columns :data:`CONFIRMATORY_COLUMNS`).
    values
        Per-animal values behind each row (columns :data:`VALUE_COLUMNS`).
    """
    adata = select_arms(adata, condition_key, reference, test)
    de = DESettings(
        condition_key=condition_key,
        reference=reference,
        test=test,
        min_cells=min_cells,
        min_replicates=min_replicates,
        covariates=tuple(covariates),
        threads=threads,
        alpha=alpha,
        method=de_method,
    )
    design = _Design(
        de,
        min_share,
        tuple(immune_types),
        loo,
        shrink,
        {} if fits is None else fits,
        subtype_mix=subtype_mix,
        within_subtype=within_subtype,
    )
    rows, values = [], []
    for k, hyp in enumerate(hypotheses, start=1):
        row = {c: np.nan for c in CONFIRMATORY_COLUMNS}
        row.update(
            hypothesis=f"H{k}: {hyp.label}",
            kind=hyp.kind,
            gene=hyp.gene or "",
            cell_type=hyp.cell_type,
            level="",
            denominator=hyp.denominator or "",
            direction=hyp.direction or "two-sided",
            loo_sign_stable=pd.NA,
            per_animal="",
            method="",
            verdict="",
            reason="",
        )
        per = {
            "change": _change,
            "source": _source,
            "main_sources": _main_sources,
            "proportion": _proportion,
            "interaction": _interaction,
        }[hyp.kind](adata, hyp, row, design)
        if len(per):
            per = per.assign(hypothesis=row["hypothesis"])
            values.append(per[VALUE_COLUMNS])
            row["per_animal"] = ";".join(
                f"{s}={v:.4g}" for s, v in zip(per["sample"], per["value"], strict=True)
            )
        logger.info("%s: p=%s, %s", row["hypothesis"], row["pvalue"], row["reason"] or "tested")
        rows.append(row)
    # the family is the pre-specified list: an untestable hypothesis still counts in Holm's m
    m = len(rows)
    for row, p_holm in zip(rows, holm([r["pvalue"] for r in rows], m=m), strict=True):
        row.update(p_holm=p_holm, holm_m=m)
        row["mde_80"] = _mde(row, alpha, m)
        row["verdict"], row["reason"] = _judge(row, alpha)
        if row.get("_note"):  # e.g. animals without any parent cell (within_<parent>)
            row["reason"] = "; ".join(r for r in (row["reason"], row["_note"]) if r)
    table = pd.DataFrame(rows, columns=CONFIRMATORY_COLUMNS)
    for col in ("n_animals_reference", "n_animals_test", "loo_n_computable", "loo_n_animals"):
        table[col] = pd.to_numeric(table[col]).astype("Int64")
    table["holm_m"] = table["holm_m"].astype("Int64")
    table["loo_sign_stable"] = table["loo_sign_stable"].astype("boolean")
    vals = (
        pd.concat(values, ignore_index=True)
        if values
        else pd.DataFrame({c: pd.Series(dtype=object) for c in VALUE_COLUMNS})
    )
    return table, vals


#: The power the minimum detectable effect (``mde_80``) is computed for.
POWER = 0.8


def _mde(row: dict, alpha: float, m: int) -> float:
    """The smallest true effect this row's test detects with :data:`POWER` (``mde_80``).

    On the row's effect scale (the unshrunk one for ``change``), from its own standard error
    and null distribution: ``(q(1 - alpha / m) + q(POWER)) * se``, one-sided with a direction
    (``alpha / (2 m)`` two-sided). ``alpha / m`` is the first step of Holm's ladder: the bar a
    hypothesis must clear alone, whatever the others do, so the value is conservative. NaN for
    a row without a test.
    """
    se, dist = row.get("_se"), row.get("_dist")
    if se is None or dist is None or not np.isfinite(se) or not np.isfinite(row["pvalue"]):
        return np.nan
    level = alpha / m / (1 if row["direction"] != "two-sided" else 2)
    return float((dist.ppf(1 - level) + dist.ppf(POWER)) * se)


def _in_direction(row: dict) -> bool:
    # the unshrunk estimate: apeGLM may pull a weak effect to a sign-less ~0
    effect = row["effect_unshrunk"]
    return row["direction"] == "two-sided" or (effect > 0) == (row["direction"] == "up")


def _judge(row: dict, alpha: float) -> tuple[str, str]:
    """The verdict of a tested row and its reason (see the module docstring)."""
    caveat = row.get("_inconclusive", "")
    if not np.isfinite(row["pvalue"]):
        return (INCONCLUSIVE, caveat) if caveat else (NOT_TESTABLE, row["reason"] or "not testable")
    against = []
    if not row["p_holm"] < alpha:
        against.append(f"Holm p = {row['p_holm']:.3g} >= {alpha:g} (family m = {row['holm_m']})")
    if not _in_direction(row):
        against.append(f"estimate {row['effect_unshrunk']:+.3g} against the stated direction")
    k, n = row["loo_n_computable"], row["loo_n_animals"]
    if row["loo_sign_stable"] is False:
        against.append(
            f"sign not stable leaving one animal out ({row['loo_min']:+.3g} to "
            f"{row['loo_max']:+.3g}; {k} of {n} animals could be left out)"
        )
    if caveat:  # the data cannot answer either way, whatever the test says
        return INCONCLUSIVE, "; ".join([caveat, *against])
    if against:
        if np.isfinite(row.get("mde_80", np.nan)):
            against.append(
                f"with these animals and cells {POWER:.0%} power needs an effect of at least "
                f"{row['mde_80']:.3g} ({row['effect_scale']})"
            )
        return NOT_SUPPORTED, "; ".join(against)
    why = f"Holm p = {row['p_holm']:.3g} < {alpha:g} (family m = {row['holm_m']})"
    if row["direction"] != "two-sided":
        why += f", estimate {row['effect_unshrunk']:+.3g} in the stated direction"
    if not np.isfinite(n):  # loo=False: stability was not looked at, by choice
        return INCONCLUSIVE, why + "; no leave-one-animal-out check (loo off): stability unjudged"
    if k == 0:  # a design limit, not evidence: the verdict rests on the test and the direction
        return SUPPORTED, why + (
            "; leave-one-animal-out not applicable: no animal could be left out "
            f"({row.get('_loo_why') or 'no left-out estimate could be computed'})"
        )
    if k < n:
        return SUPPORTED, why + (
            f"; sign kept leaving out each of the {k} of {n} animals that could be left out "
            f"(the others: {row.get('_loo_why') or 'no left-out estimate'})"
        )
    return SUPPORTED, why + f"; sign kept leaving out each of the {n} animals"


def _level(adata: AnnData, name: str) -> str | None:
    """``cell_type`` or ``cell_subtype``: the obs column holding ``name`` (None: neither)."""
    for key in ("cell_type", "cell_subtype"):
        if key in adata.obs.columns and (adata.obs[key].astype(str) == name).any():
            return key
    return None


def _empty_values() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in VALUE_COLUMNS if c != "hypothesis"})


def _gene_group(adata: AnnData, hyp: Hypothesis, row: dict) -> str | None:
    """Resolve the group's level; fill the not-testable reason and return None on failure."""
    if hyp.gene not in adata.var_names:
        row["reason"] = (
            f"not testable: gene {hyp.gene!r} absent from the data (symbols are case-sensitive)"
        )
        return None
    level = _level(adata, hyp.cell_type)
    if level is None:
        row["reason"] = (
            f"not testable: no cell labelled {hyp.cell_type!r} (cell_type or cell_subtype)"
        )
        return None
    row["level"] = level
    return level


def _change(adata: AnnData, hyp: Hypothesis, row: dict, d: _Design) -> pd.DataFrame:
    level = _gene_group(adata, hyp, row)
    if level is None:
        return _empty_values()
    cells = adata[adata.obs[level].astype(str) == hyp.cell_type]
    cells, d, note = _by_subtype(cells, hyp, level, d)
    if note:
        logger.info("%s in %s: %s", hyp.gene, hyp.cell_type, note)
    # hypotheses on one group share its fit; so do calls sharing ``fits`` on the same cells
    key = (level, hyp.cell_type, d.shrink, _digest(cells.obs_names), d.de.covariates,
           d.de.min_cells, d.de.method)  # fmt: skip
    if key not in d.fits:
        d.fits[key] = d.de.run(cells, group_key=level, groups=[hyp.cell_type], shrink=d.shrink)[
            hyp.cell_type
        ]
    table = d.fits[key]
    row["effect_scale"] = "log2 fold change" + (" (apeGLM-shrunk)" if d.shrink else "")
    # one pseudobulk of the group serves the per-animal values and the leave-one-out refits
    pb = pseudobulk(cells, group_key=level, min_cells=d.de.min_cells)
    per = _change_values(pb, hyp, d)
    method = table.attrs.get("method")
    if method not in (METHOD_PYDESEQ2, voom.METHOD_VOOM):
        row["reason"] = "not testable: " + str(
            table.attrs.get("note") or "no pseudobulk test"
        ).removeprefix("not tested: ")
        return per
    hit = table[table["gene"] == hyp.gene]
    if hit.empty:
        kept = (
            "limma-voom kept (edgeR's filterByExpr)"
            if method == voom.METHOD_VOOM
            else "with counts"
        )
        row["reason"] = (
            f"not testable: {hyp.gene} not among the {table.attrs.get('species')} genes "
            f"{kept} in {hyp.cell_type}"
        )
        return per
    rec = hit.iloc[0]
    if method == voom.METHOD_VOOM:
        return _change_voom(rec, hyp, row, d, pb, per, table)
    p_two = float(rec["pvalue"])
    cooks = not np.isfinite(p_two)  # the gene has counts: PyDESeq2's Cook's outlier filter
    lfc, se = ("log2FoldChange_shrunk", "lfcSE_shrunk") if d.shrink else ("log2FoldChange", "lfcSE")
    row.update(
        method=METHOD_PYDESEQ2,
        effect=float(rec[lfc]),
        ci_low=float(rec[lfc] - _Z95 * rec[se]),
        ci_high=float(rec[lfc] + _Z95 * rec[se]),
        pvalue=np.nan
        if cooks
        else _one_sided(float(rec["stat"]), hyp.direction, p_two, stats.norm),
        effect_unshrunk=float(rec["log2FoldChange"]),
        padj_exploratory=float(rec["padj"]),
        n_animals_reference=int(rec["n_samples_reference"]),
        n_animals_test=int(rec["n_samples_test"]),
        _se=float(rec["lfcSE"]),
        _dist=stats.norm,
    )
    if cooks:
        row["reason"] = (
            "not testable: PyDESeq2 flagged a Cook's distance outlier (one animal's count far "
            f"from the fit) for {hyp.gene} in {hyp.cell_type} and set its p-value to NaN; "
            "the hypothesis still counts in the family"
        )
        return per
    if d.loo:
        loo = _loo_change(pb, hyp.gene, d, table)
        _fill_loo(
            row, np.asarray([loo.get(a, np.nan) for a in per["sample"]]), row["effect_unshrunk"]
        )
        _loo_why(row, per, d)
    return per


def _loo_why(row: dict, per: pd.DataFrame, d: _Design) -> None:
    """Say why animals of an arm cannot be left out (``_loo_why``), when they cannot."""
    arms = per["condition"].value_counts()
    if (arms - 1 < d.de.min_replicates).any():
        short = [a for a in (d.de.reference, d.de.test) if arms.get(a, 0) - 1 < d.de.min_replicates]
        row["_loo_why"] = (
            f"leaving out an animal of {' or '.join(map(repr, short))} would leave fewer "
            f"than min_replicates = {d.de.min_replicates} animals in its arm"
        )


def _change_voom(
    rec: pd.Series,
    hyp: Hypothesis,
    row: dict,
    d: _Design,
    pb: tuple[pd.DataFrame, pd.DataFrame],
    per: pd.DataFrame,
    table: pd.DataFrame,
) -> pd.DataFrame:
    """A ``change`` row from limma-voom's table row ``rec`` (moderated t, unshrunk)."""
    dist = stats.t(float(table.attrs["df_total"][hyp.gene]))
    row.update(
        method=voom.METHOD_VOOM,
        effect_scale="log2 fold change (limma-voom)",
        effect=float(rec["log2FoldChange"]),
        ci_low=float(rec["ci_low"]),
        ci_high=float(rec["ci_high"]),
        pvalue=_one_sided(float(rec["stat"]), hyp.direction, float(rec["pvalue"]), dist),
        effect_unshrunk=float(rec["log2FoldChange"]),
        padj_exploratory=float(rec["padj"]),
        n_animals_reference=int(rec["n_samples_reference"]),
        n_animals_test=int(rec["n_samples_test"]),
        _se=float(rec["lfcSE"]),
        _dist=dist,
    )
    if d.loo:
        loo = _loo_voom(pb, hyp.gene, d, table)
        _fill_loo(row, np.asarray([loo.get(a, np.nan) for a in per["sample"]]), row["effect"])
        _loo_why(row, per, d)
    return per


def _loo_voom(
    pb: tuple[pd.DataFrame, pd.DataFrame], gene: str, d: _Design, table: pd.DataFrame
) -> dict[str, float]:
    """Animal -> the gene's limma-voom log2 fold change refitted without that animal.

    On the genes of the full test; NaN where an arm would keep fewer than ``min_replicates``
    animals or the design would have no residual degrees of freedom.
    """
    counts, meta = pb
    arm = meta[d.de.condition_key].astype(str)
    keep = (meta["kept"] & arm.isin([d.de.reference, d.de.test])).to_numpy()
    genes = pd.Index(table["gene"].astype(str))
    values = counts.loc[keep, genes].to_numpy(float)
    meta = meta[keep].reset_index(drop=True)
    arm = arm[keep].reset_index(drop=True)
    j = genes.get_loc(gene)
    out: dict[str, float] = {}
    for i, animal in enumerate(meta["sample"].astype(str)):
        rest = np.arange(len(meta)) != i
        sizes = arm[rest].value_counts()
        design = _design_matrix(meta[rest], arm[rest], d)
        if (
            min(sizes.get(d.de.reference, 0), sizes.get(d.de.test, 0)) < d.de.min_replicates
            or np.linalg.matrix_rank(design) < design.shape[1]
            or design.shape[0] <= design.shape[1]
        ):
            out[animal] = np.nan
            continue
        out[animal] = float(voom.voom_coefficient(values[rest], design)["coef"].iloc[j])
    return out


def _by_subtype(
    cells: AnnData, hyp: Hypothesis, level: str, d: _Design
) -> tuple[AnnData, _Design, str]:
    """The group's cells and design under ``subtype_mix`` / ``within_subtype``, and a note.

    Only a ``cell_type`` group whose cells carry ``cell_subtype`` is affected; elsewhere the
    cells and design come back as they are, with no note.
    """
    if level != "cell_type" or "cell_subtype" not in cells.obs:
        return cells, d, ""
    sub = cells.obs["cell_subtype"].astype(str)
    if d.within_subtype is not None:
        mine = (sub == d.within_subtype).to_numpy()
        if not mine.any():
            return cells, d, ""
        return cells[mine], d, f"tested within {d.within_subtype} ({int(mine.sum())} cells)"
    if not d.subtype_mix:
        return cells, d, ""
    counts = pd.crosstab(cells.obs["sample"].astype(str), sub)
    if counts.shape[1] < 2:
        return cells, d, f"one subtype in {hyp.cell_type}: nothing to adjust for"
    shares = counts.div(counts.sum(axis=1), axis=0)
    # the most common subtype is the reference (the shares sum to 1 with the intercept)
    order = counts.sum().sort_values(ascending=False, kind="stable").index
    names = []
    obs = cells.obs.copy()
    samples = obs["sample"].astype(str)
    for subtype in order[1:]:
        name = f"_share_{subtype}"
        obs[name] = samples.map(shares[subtype]).to_numpy(float)
        names.append(name)
    layer = d.de.layer or "counts"
    cells = AnnData(obs=obs, var=cells.var, layers={layer: cells.layers[layer]})
    de = dataclasses.replace(d.de, covariates=(*d.de.covariates, *names))
    note = f"adjusted for the animals' shares of {', '.join(map(str, order[1:]))} (vs {order[0]})"
    return cells, dataclasses.replace(d, de=de), note


def _loo_change(
    pb: tuple[pd.DataFrame, pd.DataFrame], gene: str, d: _Design, table: pd.DataFrame
) -> dict[str, float]:
    """Animal -> the gene's log2 fold change without that animal.

    The gene's coefficient is refitted on the other animals' pseudobulk (a negative binomial
    GLM with the design of the test, median-of-ratios size factors of those animals over the
    genes the test used, and the gene's dispersion from the full PyDESeq2 fit held fixed):
    how much the estimate rests on one animal, at the cost of one small GLM instead of a
    whole PyDESeq2 fit per animal. NaN where the animal cannot be left out (an arm would keep
    fewer than ``min_replicates`` animals, or the design loses its rank). ``pb`` is the
    group's :func:`tmeflow.stats.pseudobulk` (counts, metadata).
    """
    dispersion = table.attrs.get("dispersion")
    if dispersion is None or gene not in dispersion.index:
        return {}
    counts, meta = pb
    arm = meta[d.de.condition_key].astype(str)
    keep = (meta["kept"] & arm.isin([d.de.reference, d.de.test])).to_numpy()
    counts = counts.loc[keep, dispersion.index].to_numpy(float)
    meta = meta[keep].reset_index(drop=True)
    arm = arm[keep].reset_index(drop=True)
    y_all = counts[:, dispersion.index.get_loc(gene)]
    out: dict[str, float] = {}
    for i, animal in enumerate(meta["sample"].astype(str)):
        rest = np.arange(len(meta)) != i
        sizes = arm[rest].value_counts()
        if min(sizes.get(d.de.reference, 0), sizes.get(d.de.test, 0)) < d.de.min_replicates:
            out[animal] = np.nan
            continue
        design = _design_matrix(meta[rest], arm[rest], d)
        offset = np.log(de_tests.median_of_ratios(counts[rest]))
        beta = de_tests.nb_glm(y_all[rest], design, offset, float(dispersion[gene]))
        out[animal] = np.nan if beta is None else float(beta[-1] / np.log(2))
    return out


def _design_matrix(meta: pd.DataFrame, arm: pd.Series, d: _Design) -> np.ndarray:
    """The design of the test: intercept, covariates, the test arm's indicator (last).

    Numeric covariates enter as they are, the others as indicators of their levels
    (:func:`tmeflow.stats._voom.design_matrix`).
    """
    return voom.design_matrix(
        meta.assign(_arm=arm.to_numpy()),
        condition_key="_arm",
        test=d.de.test,
        covariates=d.de.covariates,
    )


def _digest(names: pd.Index) -> str:
    """A fingerprint of a cell set (its names, in order)."""
    return hashlib.sha1("\0".join(map(str, names)).encode()).hexdigest()


def _change_values(
    pb: tuple[pd.DataFrame, pd.DataFrame], hyp: Hypothesis, d: _Design
) -> pd.DataFrame:
    """Per-animal CPM of the gene in the group's pseudobulk ``pb`` (animals >= min_cells)."""
    counts, meta = pb
    if d.de.condition_key not in meta.columns:
        return _empty_values()
    arms = meta[d.de.condition_key].astype(str).isin([d.de.reference, d.de.test]).to_numpy()
    keep = meta["kept"].to_numpy() & arms
    if not keep.any():
        return _empty_values()
    lib = counts.sum(axis=1).to_numpy(float)
    cpm = counts[hyp.gene].to_numpy(float) / np.where(lib > 0, lib, np.nan) * 1e6
    out = pd.DataFrame(
        {
            "sample": meta["sample"].to_numpy(),
            "condition": meta[d.de.condition_key].astype(str).to_numpy(),
            "value": cpm,
            "value_label": f"{hyp.gene} CPM in {hyp.cell_type} (pseudobulk)",
            "n_cells": meta["n_cells"].to_numpy(),
        }
    )[keep]
    return _arm_order(out, d)


def _arm_order(per: pd.DataFrame, d: _Design) -> pd.DataFrame:
    rank = per["condition"].map({d.de.reference: 0, d.de.test: 1})
    return (
        per.assign(_r=rank)
        .sort_values(["_r", "sample"], kind="mergesort")
        .drop(columns="_r")
        .reset_index(drop=True)
    )


def _fill_loo(row: dict, loo: np.ndarray, full: float) -> None:
    """Leave-one-out range and whether every *computable* left-out estimate keeps the sign.

    A NaN estimate (the animal cannot be left out) is not applicable, not unstable: it is
    counted out of ``loo_n_computable``; with none computable ``loo_sign_stable`` is NA.
    """
    ok = ~np.isnan(loo)  # +-inf: a proportion's type vanishes from an arm (a sign all the same)
    row["loo_n_animals"], row["loo_n_computable"] = int(loo.size), int(ok.sum())
    if not ok.any():
        row["loo_min"], row["loo_max"], row["loo_sign_stable"] = np.nan, np.nan, pd.NA
        return
    kept = loo[ok]
    row["loo_min"], row["loo_max"] = float(kept.min()), float(kept.max())
    row["loo_sign_stable"] = bool(full != 0 and (np.sign(kept) == np.sign(full)).all())


#: Largest share of a group's UMIs of the gene that ambient RNA (or other-species UMIs) may
#: explain for a ``source`` row to be judged; above it the row is ``inconclusive``.
MAX_AMBIENT_EXPLAINED = 0.5


def _gene_counts(adata: AnnData, gene: str, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """The gene's counts per cell and every cell's total counts, in ``layers[layer]``."""
    mat = adata.layers[layer]
    mat = mat.tocsc() if sp.issparse(mat) else np.asarray(mat)
    j = adata.var_names.get_loc(gene)
    col = mat[:, [j]].toarray().ravel() if sp.issparse(mat) else mat[:, j]
    return np.asarray(col, float), np.asarray(mat.sum(axis=1), float).ravel()


def _cells_digest(adata: AnnData) -> str:
    """A fingerprint of the cells and of what the ambient accounting reads (sample, species)."""
    cols = [adata.obs[k].astype(str) for k in ("sample", "species") if k in adata.obs]
    names = adata.obs_names.astype(str)
    for col in cols:
        names = names + "\t" + pd.Index(col.to_numpy())
    return _digest(names)


def _cells_cache(adata: AnnData, d: _Design) -> dict:
    """The cell set's share of the fits cache: corrected counts and the ambient accounting.

    Keyed by :func:`_cells_digest`, so the sensitivity's settings that only relabel cells, and
    the family's rows on one gene, read a gene's ambient-corrected counts once (at 100k cells a
    read was ~3.5 s). The digest is taken once per :func:`confirm` call (its cells are fixed).
    """
    if "cells" not in d.tables:
        d.tables["cells"] = d.fits.setdefault(("cells", _cells_digest(adata)), {})
    return d.tables["cells"]


def _corrected_gene(
    adata: AnnData, gene: str, cache: dict | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per cell: the gene's raw UMIs, its ambient-corrected UMIs and the raw totals.

    The raw ``layers['counts']`` minus the ambient accounting of :func:`tmeflow.cells.gene_ambient`
    (other-species UMIs and the soup UMIs the cell's own species is expected to carry, floored at 0:
    the correction of :mod:`tmeflow.stats._expression_sources`).
    ``layers['counts_ambient_corrected']`` is not read here: the ``ambient_correction`` setting of
    :mod:`tmeflow.stats._sensitivity` tests the family on it. ``cache``: one cell set's dict
    (:func:`_cells_cache`); the result is kept there per gene, and the ambient accounting's
    per-sample contamination once for every gene.
    """
    key = ("corrected_gene", gene)
    if cache is not None and key in cache:
        return cache[key]
    raw, totals = _gene_counts(adata, gene, "counts")
    other, expected = ambient.gene_ambient(adata, raw, gene, layer="counts", cache=cache)
    out = (raw, np.maximum(raw - other - expected, 0.0), totals)
    if cache is not None:
        cache[key] = out
    return out


def _ambient_caveat(row: dict, raw: float, corrected: float, hyp: Hypothesis) -> None:
    """Fill ``ambient_explained`` and, above :data:`MAX_AMBIENT_EXPLAINED`, the caveat.

    For ``source`` and ``main_sources`` rows: ``raw`` and ``corrected`` are the group's UMIs of
    the gene before and after the ambient accounting.
    """
    if raw <= 0:
        return
    row["ambient_explained"] = float(1 - corrected / raw)
    if row["ambient_explained"] > MAX_AMBIENT_EXPLAINED:
        row["_inconclusive"] = (
            f"inconclusive: ambient RNA or other-species UMIs explain "
            f"{row['ambient_explained']:.0%} of the {hyp.gene} UMIs of {hyp.cell_type} "
            f"(> {MAX_AMBIENT_EXPLAINED:.0%}): their share is mostly soup"
        )


def _one_sample_t(row: dict, y: np.ndarray, what: str) -> bool:
    """Fill a row with the one-sided one-sample t that the animals' ``y`` is above 0.

    With its interval and the leave-one-animal-out means (``source`` and ``main_sources``
    rows); False, with the reason, when every animal has the same ``what``.
    """
    mean, se = float(y.mean()), float(y.std(ddof=1) / np.sqrt(y.size))
    if se == 0:
        row["reason"] = f"not testable: the same {what} in every animal"
        return False
    dist = stats.t(y.size - 1)
    row.update(
        effect=mean,
        effect_unshrunk=mean,
        ci_low=mean - dist.ppf(0.975) * se,
        ci_high=mean + dist.ppf(0.975) * se,
        pvalue=float(dist.sf(mean / se)),
        _se=se,
        _dist=dist,
    )
    _fill_loo(row, np.array([np.delete(y, i).mean() for i in range(y.size)]), mean)
    return True


def _source(adata: AnnData, hyp: Hypothesis, row: dict, d: _Design) -> pd.DataFrame:
    level = _gene_group(adata, hyp, row)
    if level is None:
        return _empty_values()
    raw, corrected, totals = _corrected_gene(adata, hyp.gene, _cells_cache(adata, d))
    obs = adata.obs
    in_arms = obs[d.de.condition_key].astype(str).isin([d.de.reference, d.de.test]).to_numpy()
    mine = (obs[level].astype(str) == hyp.cell_type).to_numpy() & in_arms
    # the denominator: cells of the gene's species (a mouse gene's share of the mouse UMIs)
    own = np.ones(adata.n_obs, dtype=bool)
    if "species" in adata.var.columns and "species" in obs.columns:
        g_sp = str(adata.var["species"].astype(str).iat[adata.var_names.get_loc(hyp.gene)])
        if g_sp in ambient.CELL_SPECIES:
            own = (obs["species"].astype(str) == g_sp).to_numpy()
    corrected = np.where(own, corrected, 0.0)  # other-species cells: ambient or doublets
    cells = pd.DataFrame(
        {
            "sample": obs["sample"].astype(str).to_numpy(),
            "k": np.where(mine, corrected, 0.0),
            "K": np.where(in_arms, corrected, 0.0),
            "n_g": np.where(mine & own, totals, 0.0),
            "n": np.where(in_arms & own, totals, 0.0),
            "cells": mine.astype(int),
        }
    )[in_arms]
    per_sample = cells.groupby("sample", sort=False).sum()
    cond = obs[d.de.condition_key].astype(str).groupby(obs["sample"].astype(str)).first()
    per_sample = per_sample[(per_sample["cells"] > 0) & (per_sample["n"] > 0)]
    k, big_k = per_sample["k"].to_numpy(float), per_sample["K"].to_numpy(float)
    pi = per_sample["n_g"].to_numpy(float) / per_sample["n"].to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(big_k > 0, (k / big_k) / pi, np.nan)
    per = _arm_order(
        pd.DataFrame(
            {
                "sample": per_sample.index.astype(str),
                "condition": cond.reindex(per_sample.index).to_numpy(),
                "value": ratio,
                "value_label": (
                    f"{hyp.cell_type} share of {hyp.gene} UMIs / its share of all UMIs"
                ),
                "n_cells": per_sample["cells"].to_numpy(int),
            }
        ),
        d,
    )
    row["effect_scale"] = "mean log2 enrichment (share of the gene's UMIs / share of all UMIs)"
    row["direction"] = "up"  # enriched: the ratio is above 1
    row["method"] = "one-sample t (animals)"
    row["n_animals_reference"] = int((per["condition"] == d.de.reference).sum())
    row["n_animals_test"] = int((per["condition"] == d.de.test).sum())
    _ambient_caveat(row, raw[mine].sum(), corrected[mine].sum(), hyp)
    if (pi <= 0).any() or len(per) < 3:
        row["reason"] = (
            f"not testable: {len(per)} animal(s) with {hyp.cell_type} cells of the gene's "
            "species (at least 3 needed)"
        )
        return per
    # (k + pi) / (K + 1): an animal without UMIs of the gene has ratio 1 (log 0), so a barely
    # detected gene cannot pass for an enriched one
    y = np.log2((k + pi) / (big_k + 1) / pi)
    _one_sample_t(row, y, "enrichment")
    return per


def _main_sources(adata: AnnData, hyp: Hypothesis, row: dict, d: _Design) -> pd.DataFrame:
    obs = adata.obs
    levels = [c for c in ("cell_type", "cell_subtype") if c in obs.columns]
    missing = [g for g in hyp.groups if _level(adata, g) is None]
    row["level"] = "+".join(dict.fromkeys(_level(adata, g) or "?" for g in hyp.groups))
    if hyp.gene not in adata.var_names:
        row["reason"] = f"not testable: gene {hyp.gene} not in the data"
        return _empty_values()
    if len(missing) == len(hyp.groups):
        row["reason"] = f"not testable: no cell labelled {', '.join(missing)}"
        return _empty_values()
    raw, corrected, _ = _corrected_gene(adata, hyp.gene, _cells_cache(adata, d))
    in_arms = obs[d.de.condition_key].astype(str).isin([d.de.reference, d.de.test]).to_numpy()
    mine = np.zeros(adata.n_obs, dtype=bool)
    for key in levels:
        mine |= obs[key].astype(str).isin(hyp.groups).to_numpy()
    # the stroma of the gene's species: its cells that are not tumour
    stroma = (obs["cell_type"].astype(str) != "tumor").to_numpy() if "cell_type" in obs else True
    stroma = stroma & in_arms
    if "species" in adata.var.columns and "species" in obs.columns:
        g_sp = str(adata.var["species"].astype(str).iat[adata.var_names.get_loc(hyp.gene)])
        if g_sp in ambient.CELL_SPECIES:
            stroma &= (obs["species"].astype(str) == g_sp).to_numpy()
    mine &= stroma
    cells = pd.DataFrame(
        {
            "sample": obs["sample"].astype(str).to_numpy(),
            "k": np.where(mine, corrected, 0.0),
            "K": np.where(stroma, corrected, 0.0),
            "cells": mine.astype(int),
        }
    )[stroma]
    per_sample = cells.groupby("sample", sort=False).sum()
    per_sample = per_sample[per_sample["K"] > 0]
    cond = obs[d.de.condition_key].astype(str).groupby(obs["sample"].astype(str)).first()
    k, big_k = per_sample["k"].to_numpy(float), per_sample["K"].to_numpy(float)
    share = k / big_k
    per = _arm_order(
        pd.DataFrame(
            {
                "sample": per_sample.index.astype(str),
                "condition": cond.reindex(per_sample.index).to_numpy(),
                "value": share,
                "value_label": f"{hyp.cell_type} share of the stromal {hyp.gene} UMIs",
                "n_cells": per_sample["cells"].to_numpy(int),
            }
        ),
        d,
    )
    row["effect_scale"] = f"mean logit share minus logit({hyp.share:g})"
    row["method"] = "one-sample t (animals)"
    row["n_animals_reference"] = int((per["condition"] == d.de.reference).sum())
    row["n_animals_test"] = int((per["condition"] == d.de.test).sum())
    _ambient_caveat(row, raw[mine].sum(), corrected[mine].sum(), hyp)
    if len(per) < 3:
        row["reason"] = (
            f"not testable: {len(per)} animal(s) with stromal {hyp.gene} UMIs (at least 3 needed)"
        )
        return per
    y = np.log((k + 0.5) / (big_k - k + 0.5)) - np.log(hyp.share / (1 - hyp.share))
    if _one_sample_t(row, y, "share") and missing:
        row["_inconclusive"] = row.get("_inconclusive") or (
            f"inconclusive: no cell labelled {', '.join(missing)}: the share is of the others"
        )
    return per


def _proportion(adata: AnnData, hyp: Hypothesis, row: dict, d: _Design) -> pd.DataFrame:
    within = hyp.denominator.startswith(WITHIN)
    row["level"] = "cell_subtype" if within else "cell_type"
    row["effect_scale"] = "log odds ratio of the pooled proportion"
    row["method"] = composition.QUASI_BINOMIAL
    if "denominators" not in d.tables:  # one set of tables for every proportion row
        d.tables["denominators"] = composition.denominator_proportions(
            adata, condition_key=d.de.condition_key, immune_types=d.immune_types
        )
    tables = d.tables["denominators"]
    if within and _within_missing(adata, hyp, tables, row, d) is None:
        return _empty_values()
    if hyp.denominator not in tables:
        row["reason"] = f"not testable: no cells in denominator {hyp.denominator!r}" + (
            " (obs lacks 'species')"
            if hyp.denominator == "stroma" and "species" not in adata.obs
            else ""
        )
        return _empty_values()
    props = tables[hyp.denominator]
    props = props[props["condition"].astype(str).isin([d.de.reference, d.de.test])]
    if hyp.cell_type not in set(props["cell_type"]):
        row["reason"] = f"not testable: no cell labelled {hyp.cell_type!r} among {hyp.denominator}"
        return _empty_values()
    # the exploratory table's test, for padj_exploratory (BH among the denominator's types)
    res = composition.propeller(props, reference=d.de.reference, test=d.de.test, alpha=d.de.alpha)
    rec = res.set_index("cell_type").loc[hyp.cell_type]
    mine = props[props["cell_type"] == hyp.cell_type]
    totals = props.groupby("sample", sort=False)["n_cells"].sum()
    per = _arm_order(
        pd.DataFrame(
            {
                "sample": mine["sample"].to_numpy(),
                "condition": mine["condition"].astype(str).to_numpy(),
                "value": mine["fraction"].to_numpy(float),
                "value_label": f"{hyp.cell_type} fraction of "
                f"{hyp.denominator.removeprefix(WITHIN)} cells",
                "n_cells": mine["n_cells"].to_numpy(),
            }
        ),
        d,
    )
    denominator = per["sample"].map(totals).fillna(0).to_numpy(float)
    per = per[denominator > 0].reset_index(drop=True)
    fit = composition.quasi_binomial_test(
        per["n_cells"].to_numpy(float),
        denominator[denominator > 0],
        (per["condition"] == d.de.test).to_numpy(),
        direction=hyp.direction,
    )
    row["n_animals_reference"] = int(fit["n_reference"])
    row["n_animals_test"] = int(fit["n_test"])
    if not np.isfinite(fit["pvalue"]):
        row["reason"] = "not testable: " + (fit["note"] or "no test")
        if row.get("_note"):
            row["reason"] += "; " + row.pop("_note")
        return per
    dist = stats.t(fit["df"])
    row.update(
        effect=fit["effect"],
        effect_unshrunk=fit["effect"],
        ci_low=fit["ci_low"],
        ci_high=fit["ci_high"],
        pvalue=fit["pvalue"],
        padj_exploratory=float(rec["padj"]),
        _se=fit["se"],
        _dist=dist,
    )
    # as for every kind: an animal whose arm would keep fewer than min_replicates animals
    # cannot be left out (its refit is not applicable, not a sign)
    loo = np.asarray(fit["loo"], dtype=float).copy()
    is_test = (per["condition"] == d.de.test).to_numpy()
    short_test = fit["n_test"] - 1 < d.de.min_replicates
    short_ref = fit["n_reference"] - 1 < d.de.min_replicates
    loo[np.where(is_test, short_test, short_ref)] = np.nan
    _fill_loo(row, loo, fit["effect"])
    _loo_why(row, per, d)
    return per


def _interaction(adata: AnnData, hyp: Hypothesis, row: dict, d: _Design) -> pd.DataFrame:
    """The ligand-receptor score from sender to receiver between the arms (Welch, animals)."""
    row["effect_scale"] = "difference in mean score sqrt(L * R), log1p CP10k"
    row["method"] = "Welch t (animals)"
    row["level"] = "->".join(_level(adata, g) or "?" for g in (hyp.cell_type, hyp.receiver))
    split = communication.split_interaction(hyp.gene, adata.var_names)
    if split is None:
        row["reason"] = (
            f"not testable: {hyp.gene!r} does not split into a ligand and a receptor of the "
            "data (symbols are case-sensitive; complexes join subunits with '_')"
        )
        return _empty_values()
    ligand, receptor = split
    cells_cache = _cells_cache(adata, d)  # the ligand's and receptor's counts, once
    try:
        scores = communication.animal_scores(
            adata,
            ligand,
            receptor,
            hyp.cell_type,
            hyp.receiver,
            condition_key=d.de.condition_key,
            min_cells=d.de.min_cells,
            cache=cells_cache,
        )
    except KeyError as err:
        row["reason"] = f"not testable: {err.args[0]}"
        return _empty_values()
    scores = scores[scores["condition"].isin([d.de.reference, d.de.test])]
    per = _arm_order(
        pd.DataFrame(
            {
                "sample": scores["sample"].astype(str).to_numpy(),
                "condition": scores["condition"].astype(str).to_numpy(),
                "value": scores["score"].to_numpy(float),
                "value_label": f"{hyp.gene} score, {hyp.cell_type} -> {hyp.receiver}",
                "n_cells": scores["n_cells_sender"].to_numpy(int),
            }
        ),
        d,
    )
    ref = per.loc[per["condition"] == d.de.reference, "value"].to_numpy(float)
    tst = per.loc[per["condition"] == d.de.test, "value"].to_numpy(float)
    row["n_animals_reference"], row["n_animals_test"] = int(ref.size), int(tst.size)
    sender = communication.groups_of(adata)[hyp.cell_type]
    explained = communication.ligand_ambient(adata, ligand, sender, cells_cache)
    if np.isfinite(explained):
        row["ambient_explained"] = explained
        if explained > MAX_AMBIENT_EXPLAINED:
            row["_inconclusive"] = (
                f"inconclusive: ambient RNA or other-species UMIs explain {explained:.0%} of "
                f"{hyp.cell_type}'s {ligand} UMIs (> {MAX_AMBIENT_EXPLAINED:.0%}): the ligand "
                "is mostly soup"
            )
    if min(ref.size, tst.size) < d.de.min_replicates:
        row["reason"] = (
            f"not testable: {ref.size} vs {tst.size} animals with {hyp.cell_type} and "
            f"{hyp.receiver} cells (min_replicates = {d.de.min_replicates})"
        )
        return per
    w = communication.welch(ref, tst)
    if not np.isfinite(w["pvalue"]):
        row["reason"] = f"not testable: {w['note']}"
        return per
    dist = stats.t(w["df"])
    row.update(
        effect=w["effect"],
        effect_unshrunk=w["effect"],
        ci_low=w["ci_low"],
        ci_high=w["ci_high"],
        pvalue=_one_sided(w["stat"], hyp.direction, w["pvalue"], dist),
        _se=w["se"],
        _dist=dist,
    )
    loo = np.full(ref.size + tst.size, np.nan)
    for i in range(loo.size):
        r = np.delete(ref, i) if i < ref.size else ref
        t = np.delete(tst, i - ref.size) if i >= ref.size else tst
        if min(r.size, t.size) >= d.de.min_replicates:
            loo[i] = float(t.mean() - r.mean())
    _fill_loo(row, loo, w["effect"])
    if (row["loo_n_computable"] or 0) < loo.size:
        row["_loo_why"] = (
            f"leaving one out would leave fewer than min_replicates = {d.de.min_replicates} "
            "animals in its arm"
        )
    return per


def _within_missing(
    adata: AnnData, hyp: Hypothesis, tables: dict, row: dict, d: _Design
) -> list[str] | None:
    """A ``within_<parent>`` denominator: the animals of the arms without any parent cell.

    They have no share among the parent's cells and are not counted: ``row['_note']`` names
    them. None (and the not-testable reason) where the denominator cannot be formed.
    """
    parent = hyp.denominator.removeprefix(WITHIN)
    obs = adata.obs
    if "cell_subtype" not in obs.columns:
        row["reason"] = f"not testable: obs lacks 'cell_subtype' (denominator {hyp.denominator!r})"
        return None
    is_parent = (obs["cell_type"].astype(str) == parent).to_numpy()
    if not is_parent.any():
        row["reason"] = (
            f"not testable: no cell of type {parent!r} (denominator {hyp.denominator!r})"
        )
        return None
    if hyp.denominator not in tables:
        row["reason"] = (
            f"not testable: {parent!r} is not split into subtypes (its cells' cell_subtype is "
            f"{parent!r}), so there is no share within it"
        )
        return None
    in_arms = obs[d.de.condition_key].astype(str).isin([d.de.reference, d.de.test]).to_numpy()
    samples = obs["sample"].astype(str)
    with_parent = set(samples[is_parent & in_arms])
    missing = [s for s in dict.fromkeys(samples[in_arms]) if s not in with_parent]
    if missing:
        row["_note"] = (
            f"{len(missing)} animal(s) without any {parent} cell not counted "
            f"({', '.join(missing)}): no share within {parent}"
        )
    return missing
