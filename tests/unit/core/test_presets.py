"""Paper presets in config/presets/: valid configs and sample-sheet templates to fill in."""

import pytest
import yaml

from tmeflow.core import _config as tmc
from tmeflow.inputs import _sample_sheet as tms

from ...conftest import REPO

PRESET = REPO / "config" / "presets" / "utsumi2025"
SCHEMAS = REPO / "workflow" / "schemas"


@pytest.fixture
def preset_config() -> dict:
    return yaml.safe_load((PRESET / "config.yaml").read_text())


def test_utsumi2025_config_validates_and_states_the_design(preset_config):
    cfg = tmc.validate_config(preset_config, SCHEMAS / "config.schema.yaml")
    assert cfg["species"] == "xenograft"
    assert cfg["contrast"] == {"column": "condition", "reference": "control", "test": "alectinib"}
    assert cfg["genes_of_interest"] == ["Gas6", "Mmp11", "Axl", "AXL"]
    assert cfg["samples"] == "config/presets/utsumi2025/samples.tsv"
    assert (REPO / cfg["samples"]).is_file()
    assert (REPO / cfg["annotation"]["panel"]).is_file()


def test_utsumi2025_sheet_is_a_template_with_marked_placeholders(preset_config):
    sheet = tms.read_sample_sheet(PRESET / "samples.tsv")
    assert list(sheet.columns[:3]) == ["sample", "condition", "path"]
    assert set(sheet["condition"]) == {"control", "alectinib"}
    # Every path is a placeholder to fill: no invented file, accession or URL.
    assert sheet["path"].str.startswith("FILL_ME").all()
    assert not sheet["path"].str.contains(r"GSE\d|SRR\d|https?://", regex=True).any()
    # Schema, ids and contrast are fine; only the unfilled paths stop a run, with a clear message.
    with pytest.raises(tmc.ConfigError, match=r"sample 'control_1': input 'FILL_ME"):
        tms.validate_sample_sheet(
            sheet,
            SCHEMAS / "samples.schema.yaml",
            contrast=preset_config["contrast"],
            sheet_path=str(PRESET / "samples.tsv"),
            base_dir=REPO,
        )
