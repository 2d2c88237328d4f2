"""Marker panels: the schema, the parent rules, merging and the marker lookups."""

from pathlib import Path

import jsonschema
import pytest
import yaml

from tmeflow.core import _genesets as genesets
from tmeflow.core import _panel as panel
from tmeflow.core._config import ConfigError

REPO = Path(__file__).resolve().parents[3]
SHIPPED = sorted((REPO / "config/markers").glob("*.yaml"))

PANEL = {
    "cell_types": {
        "tumor": {"species": "human", "markers": ["g100"], "source": "test"},
        "CAF": {
            "species": "mouse",
            "markers": ["g0", "g1"],
            "source": "test",
            "subtypes": {"myCAF": {"markers": ["g30"], "source": "test"}},
        },
        "TAM": {"species": "mouse", "markers": ["g10", "g11"], "source": "test"},
    }
}


def write(tmp_path, doc, name="panel.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def with_entry(label, entry):
    doc = yaml.safe_load(yaml.safe_dump(PANEL))
    doc["cell_types"][label] = entry
    return doc


def test_schema_is_valid_and_describes_every_key():
    schema = yaml.safe_load(panel.SCHEMA.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)

    def walk(node, where):
        if not isinstance(node, dict):
            return
        if node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, where
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub or "$ref" in sub, f"{where}.{key}"
            walk(sub, f"{where}.{key}")
        for key, sub in node.get("$defs", {}).items():
            assert "description" in sub, f"$defs.{key}"
            walk(sub, f"$defs.{key}")

    walk(schema, "<top>")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_panel_validates(path):
    loaded = panel.load_panel(path)
    assert loaded["cell_types"]
    for label, source in panel.marker_sources(loaded).items():
        assert source.strip(), label


def test_shipped_panel_loads_with_sources():
    loaded = panel.load_panel(REPO / "config/markers/mouse_tme.yaml")
    vocab = {"tumor", "CAF", "TAM", "monocyte", "neutrophil", "NK", "B", "endothelial", "pericyte"}
    assert vocab <= set(loaded["cell_types"])
    assert set(panel.subtype_markers(loaded, "TAM")) >= {"TAM_Mrc1", "TAM_Spp1"}
    assert set(panel.subtype_markers(loaded, "CAF")) >= {"myCAF", "iCAF"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [({"markers": ["a"]}, r"entry 'X': needs a 'source' key: The paper or database"),
     ({"source": "x"}, r"entry 'X': needs a 'markers' key: Non-empty list"),
     ({"markers": [], "source": "x"}, r"entry 'X': key 'markers': \[\] should be non-empty"),
     ({"markers": ["a"], "source": "x", "colour": "red"},
      r"entry 'X': unknown key\(s\) \['colour'\]. Allowed keys: \['description', 'markers'"),
     ({"markers": ["a"], "source": "x", "species": "rat"},
      r"entry 'X': key 'species': 'rat' is not one of \['mouse', 'human'\]. Fix: Which cells")],
)  # fmt: skip
def test_bad_panel_entries_refused(tmp_path, entry, message):
    path = write(tmp_path, {"cell_types": {"X": entry}})
    with pytest.raises(ConfigError, match=message) as err:
        panel.load_panel(path)
    assert str(path) in str(err.value)


def test_bad_subtype_entries_refused(tmp_path):
    bad_state = with_entry("X", {"markers": ["a"], "source": "s", "subtypes": {
        "s1": {"markers": ["b"], "source": "s", "state": "yes"}}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"entry 'X.s1': key 'state': 'yes' is not of type"):
        panel.load_panel(write(tmp_path, bad_state))
    with_parent = with_entry("X", {"markers": ["a"], "source": "s", "subtypes": {
        "s1": {"markers": ["b"], "source": "s", "parent": "TAM"}}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"entry 'X.s1': key 'parent': Not allowed in a subtype"):
        panel.load_panel(write(tmp_path, with_parent))


def test_every_problem_is_listed(tmp_path):
    doc = {"cell_types": {"X": {"markers": ["a"]}, "Y": {"source": "s", "colour": 1}}}
    with pytest.raises(ConfigError) as err:
        panel.load_panel(write(tmp_path, doc))
    text = str(err.value)
    assert "entry 'X': needs a 'source'" in text
    assert "entry 'Y': needs a 'markers'" in text and "entry 'Y': unknown key(s) ['colour']" in text


def test_top_level_problems_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"needs a 'cell_types' key"):
        panel.load_panel(write(tmp_path, {"name": "x"}))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['cell_typs'\]"):
        panel.load_panel(write(tmp_path, {"cell_typs": {}, "cell_types": {}}))
    with pytest.raises(FileNotFoundError, match=r"annotation\.panel"):
        panel.load_panel(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("extra", "message"),
    [({"parent": "nope"}, "entry 'form' has parent 'nope', which must be another cell type"),
     ({"parent": "form"}, "must be another cell type"),
     ({"parent": "TAM", "species": "human"}, "entry 'form' and its parent 'TAM' have different"),
     ({"parent": "TAM", "subtypes": {"s": {"markers": ["a"], "source": "x"}}},
      "entry 'form' has a parent; list subtypes under 'TAM'")],
)  # fmt: skip
def test_bad_parent_refused(tmp_path, extra, message):
    path = write(tmp_path, with_entry("form", {"markers": ["a"], "source": "x", **extra}))
    with pytest.raises(ConfigError, match=message):
        panel.load_panel(path)


def test_grandparent_refused_also_after_merging(tmp_path):
    base = write(tmp_path, with_entry("form", {"markers": ["a"], "source": "x", "parent": "TAM"}))
    extra = write(tmp_path, {"cell_types": {  # valid alone: TAM is a form of its CAF
        "CAF": {"markers": ["g0"], "source": "x"},
        "TAM": {"markers": ["g10"], "source": "x", "parent": "CAF"},
    }}, "extra.yaml")  # fmt: skip
    with pytest.raises(ConfigError, match="entry 'form' has parent 'TAM'"):
        panel.load_panels([base, extra])


def test_load_panels_merges_and_replaces(tmp_path):
    extra = write(tmp_path, {"name": "extra", "cell_types": {
        "TAM": {"markers": ["g10"], "source": "mine"},
        "mast": {"markers": ["Cpa3"], "source": "mine"},
    }}, "extra.yaml")  # fmt: skip
    merged = panel.load_panels([REPO / "config/markers/mouse_tme.yaml", extra])
    assert merged["cell_types"]["TAM"]["markers"] == ["g10"]
    assert "mast" in merged["cell_types"] and "CAF" in merged["cell_types"]
    assert merged["name"] == "mouse_tme+extra"
    assert panel.load_panels(extra)["name"] == "extra"
    with pytest.raises(ValueError, match=r"annotation\.panel"):
        panel.load_panels([])


def test_shipped_panels_cover_the_tme_with_sources():
    markers = REPO / "config/markers"
    merged = panel.load_panels([markers / "mouse_tme.yaml", markers / "human_tumor_states.yaml"])
    want = {"CAF", "TAM", "monocyte", "neutrophil", "NK", "B", "T", "DC", "endothelial",
            "pericyte", "epithelial", "erythroid", "tumor"}  # fmt: skip
    assert want <= set(merged["cell_types"])
    assert set(panel.subtype_markers(merged, "CAF")) == {"myCAF", "iCAF", "apCAF"}
    assert set(panel.subtype_markers(merged, "TAM", kind="identity")) == {"TAM_Mrc1", "TAM_Spp1"}
    assert set(panel.subtype_markers(merged, "TAM", kind="state")) == {"TAM_IFN"}
    assert panel.subtype_markers(merged, "tumor", kind="state")
    # no marker is shared between two cell types of the mouse panel
    mouse = panel.panel_markers(merged, species="mouse")
    seen = [g for gs in mouse.values() for g in gs]
    assert len(seen) == len(set(seen))


def test_lookups():
    assert panel.parent_of(with_entry("form", {"markers": ["a"], "parent": "TAM"})) == {
        "tumor": "tumor", "CAF": "CAF", "TAM": "TAM", "form": "TAM"}  # fmt: skip
    assert panel.panel_markers(PANEL, species="human") == {"tumor": ["g100"]}
    assert panel.all_markers(PANEL) == {
        "tumor": ["g100"], "CAF": ["g0", "g1"], "myCAF": ["g30"], "TAM": ["g10", "g11"],
    }  # fmt: skip
    assert panel.marker_sources(PANEL)["myCAF"] == "test"
    with pytest.raises(ValueError, match="kind"):
        panel.subtype_markers(PANEL, "CAF", kind="other")


def test_gsea_marker_sets_use_the_validated_loader(tmp_path):
    good = write(tmp_path, PANEL)
    assert genesets.marker_sets(good) == {
        "MARKERS_tumor": ["g100"], "MARKERS_CAF": ["g0", "g1"], "MARKERS_myCAF": ["g30"],
        "MARKERS_TAM": ["g10", "g11"]}  # fmt: skip
    bad = write(tmp_path, with_entry("X", {"markers": ["a"]}), "bad.yaml")
    with pytest.raises(ConfigError, match="entry 'X': needs a 'source'"):
        genesets.marker_sets(bad)
    with pytest.raises(FileNotFoundError):
        genesets.marker_sets(tmp_path / "absent.yaml")


def test_human_panel_covers_the_human_tme_with_sources():
    human = panel.load_panel(REPO / "config/markers/human_tme.yaml")
    want = {"tumor", "CAF", "TAM", "monocyte", "neutrophil", "DC", "NK", "T", "B", "plasma",
            "endothelial", "pericyte", "mast"}  # fmt: skip
    assert want <= set(panel.parent_of(human).values())
    # every entry is human: a human-only run scores its cells against all of them
    assert panel.panel_markers(human, species="mouse") == {}
    assert panel.species_labels(human, "human") >= want
    assert set(panel.subtype_markers(human, "CAF")) == {"myCAF", "iCAF", "apCAF"}
    assert set(panel.subtype_markers(human, "TAM", kind="identity")) == {"TAM_SPP1", "TAM_C1QC"}
    assert set(panel.subtype_markers(human, "TAM", kind="state")) == {"TAM_IFN"}
    assert {"T_CD4", "T_CD8", "Treg"} <= set(panel.subtype_markers(human, "T"))
    assert {"EPCAM", "KRT8", "KRT18", "KRT19"} <= set(human["cell_types"]["tumor"]["markers"])
    for label, markers in panel.all_markers(human).items():  # human symbols: upper-case
        assert all(g == g.upper() for g in markers), label
    for label, source in panel.marker_sources(human).items():
        assert any(ch.isdigit() for ch in source), f"{label}: source without a year"
    # no marker is shared between two cell types
    seen = [g for gs in panel.panel_markers(human).values() for g in gs]
    assert len(seen) == len(set(seen))


def test_mouse_tumour_panel_gives_mouse_cells_a_tumour_label():
    markers = REPO / "config/markers"
    default = panel.load_panels([markers / "mouse_tme.yaml"])
    assert "tumor" not in panel.species_labels(default, "mouse")
    merged = panel.load_panels([markers / "mouse_tme.yaml", markers / "mouse_tumor.yaml"])
    assert "tumor" in panel.species_labels(merged, "mouse")
    assert panel.species_labels(merged, "human") == set()
    assert {"Epcam", "Krt8", "Krt18", "Krt19"} <= set(merged["cell_types"]["tumor"]["markers"])
    # host epithelium is a form of tumour: the two never make each other unconfident
    assert panel.parent_of(merged)["epithelial"] == "tumor"


def test_species_warnings_say_when_the_panel_does_not_fit_the_run():
    markers = REPO / "config/markers"
    default = panel.load_panels([markers / "mouse_tme.yaml"])
    assert panel.species_warnings(default, "xenograft") == []
    (human_warning,) = panel.species_warnings(default, "human")
    assert "'tumor' or 'unassigned'" in human_warning and "human_tme.yaml" in human_warning
    (mouse_warning,) = panel.species_warnings(default, "mouse")
    assert "mouse_tumor.yaml" in mouse_warning
    human = panel.load_panels([markers / "human_tme.yaml"])
    assert panel.species_warnings(human, "human") == []
    syngeneic = panel.load_panels([markers / "mouse_tme.yaml", markers / "mouse_tumor.yaml"])
    assert panel.species_warnings(syngeneic, "mouse") == []
