"""Stage 2, cells: which droplets are cells of which species, and which to keep.

Species of cells (:mod:`._species`), cross-species doublets (:mod:`._cross_species`), ambient
RNA (:mod:`._ambient`), per-cell QC (:mod:`._qc`), the doublet callers, one registry
(:mod:`._doublets`), and the removed cells by the label of their nearest kept cells
(:mod:`._removed`).
"""

from tmeflow._lazy import attach

_NAMES = {
    "_ambient": [
        "CELL_SPECIES",
        "sample_contamination",
        "gene_ambient",
        "CORRECTED_LAYER",
        "SOUP_SOURCES",
        "MIN_SOUP_UMIS",
        "CHUNK_ENTRIES",
        "soup_profiles",
        "corrected_counts",
        "add_corrected_layer",
    ],
    "_cross_species": [
        "TEST_COLUMNS",
        "MIN_BULK_CELLS",
        "MIN_SLOPE_CELLS",
        "AmbientModel",
        "estimate_ambient",
        "bh_qvalues",
        "score_droplets",
        "call_crossspecies",
    ],
    "_doublets": [
        "SCRUBLET_KNN_MEMORY_MB",
        "detect_doublets",
        "threshold_minimum",
        "CLUSTER_MIN_CELLS",
        "CLUSTER_KS",
        "cluster_doublets",
        "score_column",
        "call_column",
        "DoubletCaller",
        "DOUBLET_CALLERS",
        "DOUBLET_METHODS",
        "CONSENSUS_RULES",
        "MULTIPLET_RATE_PER_1000",
        "expected_multiplet_rate",
        "CLUSTER_CAP",
        "cluster_alone_cap",
        "consensus",
        "call_doublets",
    ],
    "_qc": [
        "MAD_SCALE",
        "REASONS",
        "CONFIG_KEYS",
        "DOUBLET_EXCESS_FACTOR",
        "DOUBLET_EXCESS_MIN_CELLS",
        "mad_thresholds",
        "filter_cells",
        "check_conditions",
        "summary_table",
        "CELL_COLUMNS",
        "cell_table",
    ],
    "_qc_metrics": [
        "MITO_PREFIXES",
        "sample_name",
        "mito_mask",
        "qc_metrics",
        "passes_floors",
    ],
    "_removed": [
        "UNASSIGNED",
        "FLAG_FOLD",
        "FLAG_MIN_REMOVED",
        "REMOVED_REASONS",
        "LABEL_COLUMNS",
        "TABLE_COLUMNS",
        "FLAG_COLUMNS",
        "removed_obs",
        "label_removed",
        "removed_table",
        "removed_flags",
        "UNDOABLE_REASONS",
        "recomputable_removed",
        "account_removed",
    ],
    "_species": [
        "SPECIES",
        "MODES",
        "PREFIXES",
        "split_prefix",
        "strip_prefix",
        "genome_species",
        "detect_prefixes",
        "assign_species",
        "contamination",
        "species_report",
    ],
}
__getattr__, __dir__, __all__ = attach(__name__, _NAMES)
