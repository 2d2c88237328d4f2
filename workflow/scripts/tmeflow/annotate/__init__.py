"""Stage 4, annotation: cell types and subtypes from marker panels.

Marker scores of cells and labels of groups (:mod:`._scoring`), the cell-type and subtype
labels with their doublet summary (:mod:`._cell_types`), each cluster's ranked markers
(:mod:`._cluster_markers`) and scanpy's palettes and ``rank_genes_groups`` layout on what the
workflow writes (:mod:`._scverse`).
"""

from tmeflow._lazy import attach

_NAMES = {
    "_cell_types": [
        "TUMOR",
        "NO_STATE",
        "LABEL_COLUMNS",
        "annotate",
        "label_table",
        "human_cells_are_tumour",
        "CLUSTER_DOUBLET_LIKE",
        "DOUBLET_ENRICHED",
        "doublet_summary",
        "add_doublet_columns",
    ],
    "_cluster_markers": [
        "COLUMNS",
        "NOTE_COLUMNS",
        "cluster_labels",
        "rank_markers",
    ],
    "_scoring": [
        "UNASSIGNED",
        "score_cells",
        "ABUNDANT_SHARE",
        "abundance_correction",
        "assign_groups",
        "recluster",
        "cell_best_labels",
        "refine_mixed",
    ],
    "_scverse": [
        "PALETTE_COLUMNS",
        "RANK_FIELDS",
        "add_palettes",
        "rank_genes_groups_uns",
    ],
}
__getattr__, __dir__, __all__ = attach(__name__, _NAMES)
