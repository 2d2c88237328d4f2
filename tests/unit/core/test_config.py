"""Parse-time validation of config and sample sheet: every message names the key and the fix."""

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tmeflow.core import _config as tmc
from tmeflow.inputs import _sample_sheet as tms
from tmeflow.inputs._formats import mtx_triplet

REPO = Path(__file__).resolve().parents[3]
CONFIG_SCHEMA = REPO / "workflow/schemas/config.schema.yaml"
SAMPLES_SCHEMA = REPO / "workflow/schemas/samples.schema.yaml"
CONTRAST = {"column": "condition", "reference": "control", "test": "alectinib"}


@pytest.fixture()
def config() -> dict:
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def sheet(rows, columns=("sample", "condition", "path")) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(columns))


def test_shipped_config_is_valid_and_defaults_fill(config):
    minimal = {k: copy.deepcopy(config[k]) for k in ("samples", "species", "contrast",
                                                      "genes_of_interest", "seed")}  # fmt: skip
    tmc.validate_config(minimal, CONFIG_SCHEMA)
    assert minimal["qc"]["nmads_mito"] == 3
    assert minimal["scvi"]["max_epochs"] is None
    assert minimal["de"]["min_replicates"] == 2


def test_every_schema_key_has_description_and_default():
    schema = yaml.safe_load(CONFIG_SCHEMA.read_text())

    def walk(node, path):
        assert node.get("additionalProperties") is False, path
        for key, sub in node["properties"].items():
            assert sub.get("description"), f"{path}.{key} lacks a description"
            assert "default" in sub, f"{path}.{key} lacks a default"
            if sub.get("type") == "object" and "properties" in sub:
                walk(sub, f"{path}.{key}")

    walk(schema, "config")
    assert schema["$schema"].endswith("2020-12/schema")


def test_crossspecies_and_ambient_keys(config):
    minimal = {k: copy.deepcopy(config[k]) for k in ("samples", "species", "contrast",
                                                      "genes_of_interest", "seed")}  # fmt: skip
    tmc.validate_config(minimal, CONFIG_SCHEMA)
    assert minimal["species_calling"]["crossspecies_fdr"] == 0.01
    assert minimal["sources"]["ambient_correction"] is True
    config["species_calling"]["crossspecies_fdr"] = None  # the fraction rule only
    tmc.validate_config(config, CONFIG_SCHEMA)
    config["species_calling"]["crossspecies_fdr"] = 1.5
    with pytest.raises(tmc.ConfigError, match="crossspecies_fdr"):
        tmc.validate_config(config, CONFIG_SCHEMA)


def test_hypotheses_alpha_defaults_below_nominal_and_is_checked(config):
    minimal = {k: copy.deepcopy(config[k]) for k in ("samples", "species", "contrast",
                                                      "genes_of_interest", "seed")}  # fmt: skip
    tmc.validate_config(minimal, CONFIG_SCHEMA)
    assert minimal["hypotheses_alpha"] == 0.04  # the family's level, not de.alpha
    assert minimal["de"]["alpha"] == 0.05
    for bad in (0, 0.6, "0.05"):
        config["hypotheses_alpha"] = bad
        with pytest.raises(tmc.ConfigError, match="hypotheses_alpha"):
            tmc.validate_config(config, CONFIG_SCHEMA)


def test_hypotheses_de_method_defaults_to_limma_voom_and_is_checked(config):
    """The change hypotheses' test: limma-voom unless the config says pydeseq2 (issue 26)."""
    minimal = {k: copy.deepcopy(config[k]) for k in ("samples", "species", "contrast",
                                                      "genes_of_interest", "seed")}  # fmt: skip
    tmc.validate_config(minimal, CONFIG_SCHEMA)
    assert minimal["hypotheses_de_method"] == "limma_voom"
    # the sensitivity re-tests with the other one (the configured one is skipped there)
    assert set(minimal["sensitivity"]["de_methods"]) == {"limma_voom", "pydeseq2"}
    config["hypotheses_de_method"] = "pydeseq2"
    tmc.validate_config(config, CONFIG_SCHEMA)
    config["hypotheses_de_method"] = "edger"
    with pytest.raises(tmc.ConfigError, match="hypotheses_de_method"):
        tmc.validate_config(config, CONFIG_SCHEMA)


def test_unknown_key_is_named(config):
    config["qc"]["nmad_mito"] = 3
    with pytest.raises(tmc.ConfigError, match=r"unknown key\(s\) \['nmad_mito'\] under 'qc'"):
        tmc.validate_config(config, CONFIG_SCHEMA)


def test_bad_value_names_key_and_meaning(config):
    config["species"] = "rat"
    with pytest.raises(tmc.ConfigError, match=r"key 'species'.*combined human\+mouse"):
        tmc.validate_config(config, CONFIG_SCHEMA)


def test_same_reference_and_test_refused(config):
    config["contrast"]["test"] = "control"
    with pytest.raises(tmc.ConfigError, match="reference and test are both"):
        tmc.validate_config(config, CONFIG_SCHEMA)


def validate(df, tmp_path, **kw):
    return tms.validate_sample_sheet(
        df, SAMPLES_SCHEMA, contrast=CONTRAST, base_dir=tmp_path, sheet_path="s.tsv", **kw
    )


@pytest.fixture()
def files(tmp_path):
    for name in ("a.h5", "b.h5"):
        (tmp_path / name).write_bytes(b"x")
    return tmp_path


def test_good_sheet_indexed_by_sample(files):
    out = validate(sheet([["a", "control", "a.h5"], ["b", "alectinib", "b.h5"]]), files)
    assert list(out.index) == ["a", "b"]


def test_misspelled_column_gets_a_hint(files):
    df = sheet([["a", "control", "a.h5"]], columns=("sample", "conditon", "path"))
    with pytest.raises(tmc.ConfigError, match="found 'conditon': a misspelling"):
        validate(df, files)


@pytest.mark.parametrize("bad", ["my sample", "a/b", "a;rm", "$(x)", "-a"])
def test_sample_ids_with_spaces_slashes_or_metacharacters_refused(files, bad):
    df = sheet([[bad, "control", "a.h5"], ["b", "alectinib", "b.h5"]])
    with pytest.raises(tmc.ConfigError, match="column 'sample'"):
        validate(df, files)


def test_duplicate_ids_refused(files):
    df = sheet([["a", "control", "a.h5"], ["a", "alectinib", "b.h5"]])
    with pytest.raises(tmc.ConfigError, match=r"duplicate sample id\(s\) \['a'\]"):
        validate(df, files)


def test_condition_outside_contrast_refused(files):
    df = sheet([["a", "control", "a.h5"], ["b", "alectnib", "b.h5"]])
    with pytest.raises(tmc.ConfigError, match="b='alectnib'"):
        validate(df, files)


def test_missing_arm_accepted_and_flagged(files):
    # a one-condition design (issue 4: one real mouse lung) runs; the missing arm is flagged
    df = sheet([["a", "control", "a.h5"], ["b", "control", "b.h5"]])
    out = validate(df, files)
    assert list(out.index) == ["a", "b"]
    warnings = tms.design_warnings(out, CONTRAST)
    assert len(warnings) == 1
    assert "no sample has condition = 'alectinib'" in warnings[0]
    assert "nothing to compare" in warnings[0]


def test_single_sample_sheet_accepted(files):
    out = validate(sheet([["b", "alectinib", "b.h5"]]), files)
    assert list(out["condition"]) == ["alectinib"]
    (warning,) = tms.design_warnings(out, CONTRAST)
    assert "'control' (the contrast reference)" in warning


def test_both_arms_give_no_design_warning(files):
    out = validate(sheet([["a", "control", "a.h5"], ["b", "alectinib", "b.h5"]]), files)
    assert tms.design_warnings(out, CONTRAST) == []


def test_third_arm_needs_a_contrast_that_names_it(files):
    (files / "c.h5").write_bytes(b"x")
    rows = [["a", "control", "a.h5"], ["b", "alectinib", "b.h5"], ["c", "combo", "c.h5"]]
    with pytest.raises(tmc.ConfigError, match=r"c='combo'.*'contrasts'"):
        validate(sheet(rows), files)
    out = validate(sheet(rows), files, arms=["control", "alectinib", "combo"])
    assert list(out["condition"]) == ["control", "alectinib", "combo"]
    with pytest.raises(tmc.ConfigError, match="one of the compared arms 'control', 'alectinib'"):
        validate(
            sheet([*rows, ["d", "vehicle", "a.h5"]]), files, arms=["control", "alectinib", "combo"]
        )
    extra = [{"reference": "control", "test": "combo"}, {"reference": "combo", "test": "other"}]
    (warning,) = tms.design_warnings(out, CONTRAST, extra)
    assert "no sample has condition = 'other' ('contrasts[1]' test)" in warning


def test_empty_sheet_refused(files):
    with pytest.raises(tmc.ConfigError, match="no samples"):
        validate(sheet([]), files)


def test_value_outside_contrast_still_refused_in_one_arm_sheet(files):
    df = sheet([["a", "control", "a.h5"], ["b", "Control", "b.h5"]])
    with pytest.raises(tmc.ConfigError, match=r"not in the contrast \(b='Control'\)"):
        validate(df, files)


def test_missing_file_names_sample_and_path(files):
    df = sheet([["a", "control", "a.h5"], ["b", "alectinib", "missing.h5"]])
    with pytest.raises(tmc.ConfigError, match=r"sample .b.: input .missing\.h5. does not exist"):
        validate(df, files)


def test_producible_paths_and_urls_accepted(files):
    df = sheet([["a", "control", "resources/demo/a"], ["b", "alectinib", "https://x.org/b.h5"]])
    out = validate(df, files, producible=["resources/demo/a/matrix.mtx.gz"])
    assert len(out) == 2


def test_unknown_covariate_refused(files):
    df = sheet([["a", "control", "a.h5"], ["b", "alectinib", "b.h5"]])
    with pytest.raises(tmc.ConfigError, match=r"de\.covariates"):
        validate(df, files, covariates=["sex"])


def test_missing_sheet_names_the_key(tmp_path):
    with pytest.raises(tmc.ConfigError, match="config key 'samples'"):
        tms.read_sample_sheet(tmp_path / "nope.tsv")


# ---------------------------------------------------------------------------- URL rows
def url_sheet(path: str, **cells: str) -> pd.DataFrame:
    """A one-sample sheet as read_sample_sheet returns it (strings, '' for empty cells)."""
    row = {"sample": "s1", "condition": "control", "path": path, **cells}
    return pd.DataFrame([row], dtype=str).set_index("sample", drop=False)


@pytest.mark.parametrize(
    ("path", "cells"),
    [("https://h.org/d/s1.h5?dl=1", {"sha256": "a" * 64}), ("http://h.org/s1.tsv.gz", {}),
     ("https://h.org/counts.bin", {"format": "h5ad"}), ("data/s1.h5", {"sha256": ""}),
     ("data/s1.mtx", {"format": "10x_mtx"})],
)  # fmt: skip
def test_url_rows_accepted(path, cells):
    tms.check_url_rows(url_sheet(path, **cells))


def test_sha256_on_a_local_path_refused():
    with pytest.raises(tmc.ConfigError) as exc:
        tms.check_url_rows(url_sheet("inputs/s1.h5", sha256="a" * 64))
    assert str(exc.value) == (
        "sample 's1': a sha256 is given but path 'inputs/s1.h5' is not an http(s) URL; "
        "checksums are verified for downloads only. Clear the sha256 cell."
    )


TRIPLET = {"barcodes": "https://h.org/GSM1_barcodes.tsv.gz", "features": "http://h.org/g.tsv"}


@pytest.mark.parametrize(
    ("path", "fmt"),
    [("http://h.org/GSM1_matrix.mtx.gz", ""), ("http://h.org/m.mtx", "auto"),
     ("http://h.org/s1.h5", "10x_mtx")],
)  # fmt: skip
@pytest.mark.parametrize("missing", ["barcodes", "features"])
def test_matrix_market_url_needs_its_lists(path, fmt, missing):
    tms.check_url_rows(url_sheet(path, format=fmt, **TRIPLET))  # with both lists: accepted
    cells = {**TRIPLET, missing: "lists/x.tsv"}  # a local path is not a URL
    with pytest.raises(tmc.ConfigError) as exc:
        tms.check_url_rows(url_sheet(path, format=fmt, **cells))
    assert str(exc.value) == (
        f"sample 's1': URL {path!r} is a Matrix Market matrix; column {missing!r} must hold "
        f"the http(s) URL of its {missing} list (e.g. ...{missing}.tsv.gz), found "
        "'lists/x.tsv'. Add the 'barcodes' and 'features' columns (and optionally "
        "'barcodes_sha256', 'features_sha256') to the sample sheet."
    )
    del cells[missing]
    with pytest.raises(tmc.ConfigError, match=f"column {missing!r} must hold"):
        tms.check_url_rows(url_sheet(path, format=fmt, **cells))


@pytest.mark.parametrize("path", ["http://h.org/s1.h5", "data/GSM1_matrix.mtx.gz"])
def test_triplet_columns_refused_off_a_matrix_url(path):
    with pytest.raises(tmc.ConfigError) as exc:
        tms.check_url_rows(url_sheet(path, barcodes_sha256="a" * 64, **TRIPLET))
    assert str(exc.value) == (
        "sample 's1': column(s) barcodes, features, barcodes_sha256 are for a Matrix Market "
        f"file given by URL (path ending in .mtx or .mtx.gz), but path {path!r} is not one. "
        "Clear those cells (a local mtx folder brings its own lists)."
    )


def test_url_downloads_name_the_triplet_for_the_mtx_reader(tmp_path):
    row = url_sheet(
        "https://h.org/GSM1_matrix.mtx.gz", sha256="a" * 64, features_sha256="b" * 64, **TRIPLET
    ).iloc[0]
    assert tms.url_downloads(row) == {
        "matrix.mtx.gz": ("https://h.org/GSM1_matrix.mtx.gz", "a" * 64),
        "features.tsv": ("http://h.org/g.tsv", "b" * 64),
        "barcodes.tsv.gz": ("https://h.org/GSM1_barcodes.tsv.gz", ""),
    }
    # the names are those the reader pairs: three files in one folder
    for name in tms.url_downloads(row):
        (tmp_path / name).write_text("")
    files = mtx_triplet(tmp_path / "matrix.mtx.gz")
    assert [f.name for f in files] == ["matrix.mtx.gz", "features.tsv", "barcodes.tsv.gz"]
    one = url_sheet("https://h.org/d/s1.h5?dl=1", sha256="c" * 64).iloc[0]
    assert tms.url_downloads(one) == {"s1.h5": ("https://h.org/d/s1.h5?dl=1", "c" * 64)}
    assert tms.url_downloads(url_sheet("data/s1.h5").iloc[0]) == {}
    # the triplet's columns describe the input: not sample metadata
    assert tms.metadata_columns(url_sheet("x", **TRIPLET)) == ["condition"]


@pytest.mark.parametrize("fmt", [None, "", "auto"])
def test_url_of_unknown_format_refused(fmt):
    cells = {} if fmt is None else {"format": fmt}
    with pytest.raises(tmc.ConfigError) as exc:
        tms.check_url_rows(url_sheet("https://h.org/counts.bin?x=1", **cells))
    assert str(exc.value) == (
        "sample 's1': cannot tell the format of 'counts.bin' from its name. Add a 'format' "
        "column to the sample sheet (10x_h5, 10x_mtx, h5ad, table, geo_tar)."
    )


def test_url_without_a_file_name_refused(monkeypatch):
    # an http(s) URL always has a last segment ("https://h.org/" -> "h.org"), so the message
    # is reached only through a name that comes out empty
    assert tms.url_file_name("https://h.org/") == "h.org"
    monkeypatch.setattr(tms, "url_file_name", lambda url: "")
    with pytest.raises(tmc.ConfigError) as exc:
        tms.check_url_rows(url_sheet("https://h.org/"))
    assert str(exc.value) == (
        "sample 's1': URL 'https://h.org/' does not end in a file name. Point it at one file "
        "(.h5, .h5ad, .csv/.tsv[.gz], a GEO _RAW.tar, or a .mtx[.gz] matrix with 'barcodes' "
        "and 'features' URL columns)."
    )


def test_url_rows_checked_in_sheet_order():
    df = pd.concat([url_sheet("http://h.org/a.h5"), url_sheet("http://h.org/b.mtx")])
    df["sample"] = ["ok", "bad"]
    with pytest.raises(tmc.ConfigError, match=r"^sample 'bad': URL"):
        tms.check_url_rows(df)


def test_sensitivity_keys(config):
    minimal = {k: copy.deepcopy(config[k]) for k in ("samples", "species", "contrast",
                                                      "genes_of_interest", "seed")}  # fmt: skip
    tmc.validate_config(minimal, CONFIG_SCHEMA)
    assert minimal["sensitivity"] == config["sensitivity"]
    assert minimal["sensitivity"]["resolutions"] == "sweep"
    config["sensitivity"]["resolutions"] = [0.5, 1.5]
    tmc.validate_config(config, CONFIG_SCHEMA)
    for key, bad in (("resolutions", "all"), ("min_fraction", [0.4])):
        wrong = copy.deepcopy(config)
        wrong["sensitivity"][key] = bad
        with pytest.raises(tmc.ConfigError, match=key):
            tmc.validate_config(wrong, CONFIG_SCHEMA)
