"""Stage 6, export: one CELLxGENE-schema h5ad per species (:mod:`._cellxgene`)."""

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
}
__getattr__, __dir__, __all__ = attach(__name__, _NAMES)
