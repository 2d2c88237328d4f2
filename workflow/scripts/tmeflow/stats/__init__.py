"""Stage 5, condition statistics, with the animal as the unit.

Pseudobulk (:mod:`._pseudobulk`), DE per group (:mod:`._de`) by PyDESeq2 or an exploratory
Wilcoxon (:mod:`._de_methods`), the DE rule's tables (:mod:`._de_tables`), genes of interest
(:mod:`._genes_of_interest`), composition (:mod:`._composition`) with limma's empirical
Bayes (:mod:`._ebayes`), expression sources (:mod:`._expression_sources`), ligand-receptor
communication (:mod:`._communication`), the confirmatory family (:mod:`._confirmatory`) and its
sensitivity (:mod:`._sensitivity`; how each verdict holds up across it, :mod:`._robustness`)
and GSEA (:mod:`._gsea`). Multiple testing is statsmodels'
everywhere (:func:`tmeflow._utils.adjust_pvalues`).
"""

from tmeflow._lazy import attach

_NAMES = {
    "_communication": [
        "PAIR_COLUMNS",
        "MAPPING_COLUMNS",
        "SCORE_COLUMNS",
        "COMPARISON_COLUMNS",
        "consensus_resource",
        "one_to_one",
        "read_orthologs",
        "map_resource",
        "interaction_scores",
        "animal_scores",
        "compare_arms",
        "communication",
    ],
    "_composition": [
        "PROPORTION_COLUMNS",
        "COMPOSITION_COLUMNS",
        "METHODS",
        "DESCRIPTIVE",
        "proportions",
        "compare_proportions",
        "PROPELLER_COLUMNS",
        "PROPELLER",
        "IMMUNE_TYPES",
        "PROPELLER_ROBUST",
        "PROPELLER_TREND",
        "propeller",
        "denominator_proportions",
        "compare_denominators",
        "QUASI_BINOMIAL",
        "MIN_DISPERSION",
        "quasi_binomial_test",
    ],
    "_confirmatory": [
        "CONFIRMATORY_COLUMNS",
        "VALUE_COLUMNS",
        "VERDICTS",
        "MAIN_SHARE",
        "Hypothesis",
        "parse_hypotheses",
        "holm",
        "confirm",
        "POWER",
        "MAX_AMBIENT_EXPLAINED",
    ],
    "_ebayes": [
        "squeeze_var",
        "fit_f_dist",
        "fit_f_dist_robustly",
    ],
    "_de": [
        "DE_COLUMNS",
        "METHOD_PYDESEQ2",
        "METHOD_WILCOXON",
        "METHOD_NOT_TESTED",
        "PSEUDOBULK_METHODS",
        "SHRUNK_COLUMNS",
        "empty_table",
        "DESettings",
        "run_de",
    ],
    "_de_methods": [
        "pydeseq2_test",
        "wilcoxon_test",
        "median_of_ratios",
        "nb_glm",
    ],
    "_de_tables": [
        "DE_SUMMARY_COLUMNS",
        "subtype_groups",
        "de_summary",
        "DELevels",
        "run_levels",
    ],
    "_expression_sources": [
        "SOURCE_COLUMNS",
        "expression_sources",
        "primary_sources",
        "SAMPLE_SHARE_COLUMNS",
        "PRIMARY_COLUMNS",
        "sample_shares",
        "POOLED",
        "primary_summary",
        "gene_sources",
        "read_tables",
        "primary_from_files",
    ],
    "_genes_of_interest": [
        "GOI_COLUMNS",
        "GOI_SAMPLE_COLUMNS",
        "genes_of_interest",
    ],
    "_gsea": [
        "GSEAPY_COLUMNS",
        "GSEA_COLUMNS",
        "GSEA_SUMMARY_COLUMNS",
        "load_gene_sets",
        "ranking",
        "prerank",
        "gsea_summary",
        "prerank_files",
    ],
    "_pseudobulk": [
        "counts_matrix",
        "check_obs",
        "pair_indicator",
        "cp10k_log",
        "pseudobulk",
        "select_arms",
    ],
    "_voom": ["METHOD_VOOM", "filter_by_expr", "voom", "voom_limma_test"],
    "_robustness": ["ROBUSTNESS_COLUMNS", "robustness"],
    "_retrain": ["RETRAIN_SETTING", "PCA_COMPONENTS", "retrain_labels", "retrain_variants"],
    "_sensitivity": [
        "TRIED_PARAMS",
        "LABEL_PARAMS",
        "EITHER_CALLER",
        "DOUBLET_CALLS",
        "AMBIENT_LAYER",
        "CONFIGURED",
        "ANNOTATION_SETTINGS",
        "SENSITIVITY_COLUMNS",
        "Setting",
        "LabelSettings",
        "label_settings",
        "marker_out_settings",
        "sensitivity",
        "verdict_grid",
        "settings",
        "subtype_settings",
        "marker_x",
    ],
}
__getattr__, __dir__, __all__ = attach(__name__, _NAMES)
