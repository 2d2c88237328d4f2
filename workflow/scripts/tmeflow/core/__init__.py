"""The core every stage builds on: configuration, I/O, runtime, provenance, vocabulary.

Config and marker-panel validation (:mod:`._config`, :mod:`._panel`), the study's contrasts
(:mod:`._contrasts`), the input error
(:mod:`._errors`), each adapter's set-up (:mod:`._runtime`), selective h5ad and deterministic TSV
I/O through atomic writes (:mod:`._h5ad`, :mod:`._tables`, :mod:`._atomic`), the run record
(:mod:`._provenance`), the label vocabulary and colours (:mod:`._vocabulary`) and gene-set files
(:mod:`._genesets`). It imports no other stage.
"""

from tmeflow._lazy import attach

_NAMES = {
    "_atomic": [
        "atomic_path",
    ],
    "_config": [
        "ConfigError",
        "load_schema",
        "schema_default",
        "key_path",
        "describe_key",
        "schema_errors",
        "validate_config",
    ],
    "_contrasts": [
        "Contrast",
        "contrast_name",
        "study_contrasts",
        "study_arms",
    ],
    "_errors": [
        "InputError",
        "input_error",
    ],
    "_genesets": [
        "MARKER_PREFIX",
        "read_gmt",
        "marker_sets",
    ],
    "_h5ad": [
        "write_h5ad",
        "SKIPPABLE",
        "UPDATABLE",
        "read_h5ad",
        "update_h5ad",
        "read_layer",
        "read_matrix",
        "ROW_BLOCK",
        "read_rows",
        "read_var_names",
    ],
    "_panel": [
        "SCHEMA",
        "load_panel",
        "load_panels",
        "parent_of",
        "panel_markers",
        "subtype_markers",
        "marker_sources",
        "all_markers",
        "species_labels",
        "species_warnings",
    ],
    "_provenance": [
        "KEY_PACKAGES",
        "sha256_file",
        "input_digests",
        "package_versions",
        "workflow_version",
        "find_seeds",
        "build_provenance",
        "hvg_fallbacks",
        "read_benchmark",
        "run_times",
        "present_outputs",
        "write_json",
    ],
    "_runtime": [
        "setup",
        "BLAS_THREADS",
        "pin_threads",
    ],
    "_tables": [
        "FLOAT_FORMAT",
        "write_tsv",
    ],
    "_vocabulary": [
        "DEFAULT_VOCAB",
        "SPECIES_VOCAB",
        "NA_LABEL",
        "LAST_LABELS",
        "CELL_TYPE_COLORS",
        "SPECIES_COLORS",
        "NA_COLOR",
        "EMBEDDING_COLORS",
        "clean_labels",
        "label_order",
        "label_colors",
        "condition_colors",
        "ordered_conditions",
        "sample_order",
        "palette_for",
    ],
}
__getattr__, __dir__, __all__ = attach(__name__, _NAMES)
