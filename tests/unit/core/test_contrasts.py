"""The study's contrasts (tmeflow.core._contrasts) and the config key that lists them."""

from pathlib import Path

import pytest

from tmeflow import core
from tmeflow.core import _contrasts as cx

SCHEMA = Path(__file__).resolve().parents[3] / "workflow/schemas/config.schema.yaml"
PRIMARY = {"column": "condition", "reference": "control", "test": "alectinib"}


def _config(*extra: dict) -> dict:
    return {"contrast": dict(PRIMARY), "contrasts": list(extra)}


def test_primary_first_then_the_others_with_their_folder_names():
    found = cx.study_contrasts(
        _config(
            {"reference": "control", "test": "combo"}, {"reference": "alectinib", "test": "combo"}
        )
    )
    assert [c.name for c in found] == [
        "alectinib_vs_control",
        "combo_vs_control",
        "combo_vs_alectinib",
    ]
    assert {c.column for c in found} == {"condition"}
    assert found[2].arms == ("alectinib", "combo")
    assert found[1].as_config() == {"column": "condition", "reference": "control", "test": "combo"}
    assert cx.study_arms(found) == ["control", "alectinib", "combo"]


def test_without_the_key_only_the_primary():
    found = cx.study_contrasts({"contrast": dict(PRIMARY)})
    assert [c.arms for c in found] == [("control", "alectinib")]
    assert cx.study_arms(found) == ["control", "alectinib"]


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"reference": "combo", "test": "combo"}, r"contrasts\[0\]'.*both 'combo'"),
        (
            {"reference": "alectinib", "test": "control"},
            r"contrasts\[0\]'.*already compared by 'contrast'",
        ),
        (
            {"reference": "control", "test": "AXL inhibitor"},
            r"contrasts\[0\]'.*'AXL inhibitor'.*folder",
        ),
        ({"reference": "control", "test": "a/b"}, r"letters, digits"),
    ],
)
def test_bad_entries_name_the_key_and_the_fix(entry, match):
    with pytest.raises(core.ConfigError, match=match):
        cx.study_contrasts(_config(entry))


def test_a_contrast_listed_twice_is_refused():
    entry = {"reference": "control", "test": "combo"}
    with pytest.raises(
        core.ConfigError, match=r"contrasts\[1\]'.*already compared by 'contrasts\[0\]'"
    ):
        cx.study_contrasts(_config(entry, dict(entry)))


def test_two_contrasts_with_one_folder_name_are_refused():
    first = {"reference": "x", "test": "a_vs_b"}
    second = {"reference": "b_vs_x", "test": "a"}
    with pytest.raises(core.ConfigError, match=r"contrasts\[1\]'.*'a_vs_b_vs_x'.*'_vs_'"):
        cx.study_contrasts(_config(first, second))


def test_primary_with_the_same_arm_twice_is_refused():
    # the primary's arms are checked where the config is validated, before study_contrasts
    config = {"contrast": {**PRIMARY, "test": "control"}}
    with pytest.raises(core.ConfigError, match=r"'contrast'.*both 'control'"):
        core.validate_config(config, SCHEMA)


def test_schema_default_and_strict_entries():
    config = {}
    core.validate_config(config, SCHEMA)
    assert config["contrasts"] == []
    config = {"contrasts": [{"reference": "control", "test": "combo"}]}
    core.validate_config(config, SCHEMA)
    assert config["contrasts"] == [{"reference": "control", "test": "combo"}]
    with pytest.raises(core.ConfigError, match="contrasts"):
        core.validate_config(
            {"contrasts": [{"reference": "control", "test": "combo", "column": "arm"}]}, SCHEMA
        )
    with pytest.raises(core.ConfigError, match="contrasts"):
        core.validate_config({"contrasts": [{"reference": "control"}]}, SCHEMA)
