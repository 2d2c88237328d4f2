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


def _merged(preset: dict) -> dict:
    """The preset over config/config.yaml, dicts merged key by key (Snakemake's --configfile)."""

    def merge(base, extra):
        out = dict(base)
        for key, value in extra.items():
            both = isinstance(value, dict) and isinstance(out.get(key), dict)
            out[key] = merge(out[key], value) if both else value
        return out

    return merge(yaml.safe_load((REPO / "config" / "config.yaml").read_text()), preset)


@pytest.mark.parametrize(
    ("name", "species", "labels"),
    [
        ("human_only", "human", {"tumor", "CAF", "TAM", "T", "B", "plasma", "mast"}),
        ("mouse_only", "mouse", {"tumor", "CAF", "TAM", "T", "B"}),
    ],
)
def test_single_species_presets_fit_their_species(name, species, labels):
    from tmeflow.core import _panel as panel
    from tmeflow.export import _cellxgene as export

    preset = yaml.safe_load((REPO / "config" / "presets" / name / "config.yaml").read_text())
    cfg = tmc.validate_config(_merged(preset), SCHEMAS / "config.schema.yaml")
    assert cfg["species"] == species
    assert cfg["hypotheses"] == []  # the paper's hypotheses are the utsumi2025 preset's
    assert cfg["genes_of_interest"] and cfg["contrast"]["test"] != "alectinib"
    case = str.upper if species == "human" else str.title
    assert all(g == case(g) for g in cfg["genes_of_interest"])
    panels = [cfg["annotation"]["panel"], *cfg["annotation"]["extra_panels"]]
    merged = panel.load_panels([REPO / p for p in panels])
    # every cell of the run can get the panel's labels, tumour included, and nothing is amiss
    assert labels <= panel.species_labels(merged, species)
    assert panel.species_warnings(merged, species) == []
    for gmt in cfg["gsea"]["gene_sets"]:
        assert (REPO / gmt).is_file()
        assert (".Hs." in gmt) == (species == "human")
    assert set(cfg["composition"]["immune_types"]) <= panel.species_labels(merged, species)
    defaults = tmc.schema_default(SCHEMAS / "config.schema.yaml", "export", "cell_ontology")
    labels_all = export.panel_labels(merged)
    assert export.check_cell_ontology(cfg["export"]["cell_ontology"], labels_all, defaults) == []
    sheet = tms.read_sample_sheet(REPO / cfg["samples"])
    assert set(sheet["condition"]) == {cfg["contrast"]["reference"], cfg["contrast"]["test"]}
    assert sheet["path"].str.startswith("FILL_ME").all()
