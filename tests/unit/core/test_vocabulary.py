"""Tests of tmeflow.core._vocabulary: stable colours, display orders, no matplotlib."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from tmeflow.core import _vocabulary as P

SCRIPTS = Path(__file__).resolve().parents[3] / "workflow" / "scripts"


def test_label_colors_fixed_for_vocabulary_and_order_independent():
    labels = ["TAM", "zeta", "tumor", "unassigned", "alpha", "CAF", "cluster10", "cluster2"]
    a = P.label_colors(labels)
    b = P.label_colors(reversed(labels))
    c = P.label_colors(pd.Series(labels * 3))
    assert a == b == c
    assert list(a) == list(b)
    assert list(a) == [
        "tumor", "CAF", "TAM", "alpha", "cluster2", "cluster10", "zeta", "unassigned"
    ]  # fmt: skip
    assert a["tumor"] == P.CELL_TYPE_COLORS["tumor"]
    assert a["unassigned"] == P.CELL_TYPE_COLORS["unassigned"]
    assert len(set(a.values())) == len(a)


def test_label_colors_vocabulary_colours_do_not_depend_on_other_labels():
    full = P.label_colors(P.DEFAULT_VOCAB)
    assert len(set(full.values())) == len(P.DEFAULT_VOCAB)
    for label in P.DEFAULT_VOCAB:
        assert P.label_colors([label, "something_else"])[label] == full[label]


def test_label_colors_drops_missing_and_handles_species_and_custom_vocab():
    assert list(P.label_colors(["tumor", np.nan, None])) == ["tumor"]
    assert P.label_colors(["mouse", "human"], vocabulary=P.SPECIES_VOCAB) == {
        "human": P.SPECIES_COLORS["human"],
        "mouse": P.SPECIES_COLORS["mouse"],
    }
    custom = P.label_colors(["Treg", "tumor"], vocabulary=("tumor", "Treg", "Th17"))
    assert list(custom) == ["tumor", "Treg"]
    assert custom["Treg"] == P.label_colors(["Treg"], vocabulary=("tumor", "Treg", "Th17"))["Treg"]


def test_label_order_puts_unassigned_and_na_last():
    assert P.label_order(["NA", "unassigned", "B", "x", "tumor"]) == [
        "tumor", "B", "x", "unassigned", "NA"
    ]  # fmt: skip


def test_condition_colors_follow_given_order():
    a = P.condition_colors(["vehicle", "drug"])
    b = P.condition_colors(["drug", "vehicle"])
    assert list(a) == ["vehicle", "drug"]
    assert a["vehicle"] == b["drug"]  # the reference (first) always gets the same colour
    assert a["vehicle"] != a["drug"]


def test_ordered_conditions_reference_first_then_others_naturally():
    present = ["x10", "alectinib", "x2", "ctrl", None]
    assert P.ordered_conditions(present, ["ctrl", "alectinib"]) == [
        "ctrl",
        "alectinib",
        "x2",
        "x10",
    ]
    assert P.ordered_conditions(present, None) == ["x10", "alectinib", "x2", "ctrl"]


def test_sample_order_by_arm_then_naturally():
    by_sample = {"alec_10": "alectinib", "ctrl_2": "ctrl", "alec_2": "alectinib",
                 "ctrl_10": "ctrl", "other_1": "other"}  # fmt: skip
    assert P.sample_order(by_sample, ["ctrl", "alectinib"]) == [
        "ctrl_2", "ctrl_10", "alec_2", "alec_10", "other_1"
    ]  # fmt: skip


def test_palettes_import_no_matplotlib():
    code = "import sys, tmeflow.core._vocabulary; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={"PYTHONPATH": str(SCRIPTS)})
