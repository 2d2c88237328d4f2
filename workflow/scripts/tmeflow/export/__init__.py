"""Stage 6, export: one CELLxGENE-schema h5ad per species (:mod:`._cellxgene`) and a folder for R.

The R folder (:mod:`._r_bundle`) holds plain files that ``workflow/scripts/R/read_tmeflow.R``
loads as a SingleCellExperiment or a Seurat object.
"""

from tmeflow._lazy import attach

_NAMES = {
    "_cellxgene": [
        "ORGANISM",
        "ENSEMBL_PATTERN",
        "CELL_ONTOLOGY_PATTERN",
        "UNKNOWN",
        "UNASSIGNED",
        "RENAMED_OBS",
        "RESERVED_OBS",
        "RESERVED_VAR",
        "SPECIES_FIELDS",
        "REQUIRED_OBS",
        "panel_labels",
        "check_cell_ontology",
        "feature_ids",
        "to_cellxgene",
        "export_species",
        "problems",
    ],
    "_r_bundle": [
        "R_FILES",
        "r_counts",
        "write_r_folder",
    ],
}
__getattr__, __dir__, __all__ = attach(__name__, _NAMES)
