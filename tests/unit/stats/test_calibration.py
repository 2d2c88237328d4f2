"""The confirmatory family's family-wise error on simulated null experiments (CI version).

A fast version of ``bench/confirmatory_calibration.py``: 200 null experiments at 3 vs 3
animals (:func:`tumour_experiment`, 8 stromal types from 35% to 2%, TAM subtypes, few genes)
test the default family's non-DE kinds (source, main_sources, proportion among the stroma,
within-parent proportion; the change kind's PyDESeq2 fit is too slow for CI) with
:func:`tmeflow.stats.confirm`; the share of experiments with any Holm p < 0.05 must not
exceed 0.10 (nominal 0.05; with 200 experiments a true 0.05 exceeds 0.10 with probability
~4e-4). Deselect with ``-m "not calibration"``.
"""

import logging

import numpy as np
import pytest

from tmeflow.stats import _confirmatory as cf

from .._confirm_data import REF, TEST, tumour_experiment

FAMILY = [
    {"gene": "Postn", "cell_type": "CAF", "test": "source"},
    {"gene": "Gas6", "test": "main_sources", "groups": ["CAF", "TAM_Mrc1"]},
    {"proportion": "stroma", "cell_type": "TAM", "direction": "up"},
    {"proportion": "within_TAM", "cell_type": "TAM_Mrc1", "direction": "up"},
]
N_EXPERIMENTS = 200


@pytest.mark.calibration
def test_family_wise_error_of_the_non_de_kinds_at_3v3():
    hyps = cf.parse_hypotheses(FAMILY)
    any_holm, tested, raw = [], [], []
    logging.disable(logging.WARNING)
    try:
        for seed in range(N_EXPERIMENTS):
            adata = tumour_experiment(
                animals_per_arm=3, n_genes=12, stroma_cells=600, tumor_cells=150, seed=seed
            )
            table, _ = cf.confirm(adata, hyps, reference=REF, test=TEST, loo=False, shrink=False)
            any_holm.append(bool((table["p_holm"] < 0.05).any()))
            tested.append(table["pvalue"].notna().to_numpy())
            raw.append((table["pvalue"] < 0.05).to_numpy())
    finally:
        logging.disable(logging.NOTSET)
    # not vacuous: every hypothesis was tested in (nearly) every experiment
    assert np.mean(tested, axis=0).min() >= 0.95, np.mean(tested, axis=0)
    fwer = float(np.mean(any_holm))
    rates = dict(zip([h.label for h in hyps], np.mean(raw, axis=0), strict=True))
    assert fwer <= 0.10, (fwer, rates)
