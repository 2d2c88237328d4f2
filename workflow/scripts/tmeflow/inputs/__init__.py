"""Stage 1, inputs: from a sample sheet row to one sample's counts.

The sheet's checks (:mod:`._sample_sheet`), the input formats, one registry
(:mod:`._formats`), the readers (:mod:`._read_counts`, :mod:`._read_h5ad`,
:mod:`._count_matrix`), GEO ``_RAW.tar`` bundles (:mod:`._geo_tar`) and the sample sheet
written from a GEO file list (:mod:`._geo_sheet`), downloads (:mod:`._downloads`), gene names
(:mod:`._gene_names`), cell calling in raw matrices (:mod:`._cell_calling`) and ingest of one
sample (:mod:`._ingest`).
"""

from tmeflow._lazy import attach

_NAMES = {
    "_cell_calling": [
        "MODES",
        "barcode_totals",
        "looks_raw",
        "inflection_cutoff",
        "call_cells",
    ],
    "_count_matrix": [
        "GENE_EXPRESSION",
        "check_integer_counts",
    ],
    "_downloads": [
        "is_url",
        "url_file_name",
        "sha256sum",
        "verify_download",
    ],
    "_formats": [
        "FORMAT_READERS",
        "FORMATS",
        "format_reader",
        "mtx_triplet",
        "input_files",
        "detect_format",
    ],
    "_gene_names": [
        "make_unique",
        "mouse_symbol",
        "repair_mouse_symbol_case",
    ],
    "_geo_sheet": [
        "FILELIST_COLUMNS",
        "read_filelist",
        "sheet_from_filelist",
    ],
    "_geo_tar": [
        "TAR_SUFFIXES",
        "BundleInput",
        "is_bundle",
        "bundle_inputs",
        "pick_input",
        "list_bundle",
        "extract_input",
        "read_geo_tar",
    ],
    "_ingest": [
        "RESERVED_OBS",
        "ingest_sample",
        "reference_symbols",
        "symbol_reference",
        "ingest_report",
    ],
    "_read_counts": [
        "read_10x_h5",
        "read_10x_mtx",
        "read_table",
        "read_counts",
    ],
    "_read_h5ad": [
        "read_h5ad_counts",
        "read_h5ad_obs",
        "obs_mask",
        "first_values",
    ],
    "_sample_sheet": [
        "REQUIRED_COLUMNS",
        "INPUT_COLUMNS",
        "SPLIT_COLUMNS",
        "read_sample_sheet",
        "validate_sample_sheet",
        "metadata_columns",
        "check_obs_splits",
        "check_bundle_rows",
        "design_warnings",
        "check_url_rows",
        "TRIPLET_URL_COLUMNS",
        "is_mtx_url",
        "url_downloads",
    ],
}
__getattr__, __dir__, __all__ = attach(__name__, _NAMES)
