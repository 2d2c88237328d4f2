# The further comparisons of a study with more than two arms (config key `contrasts`): each
# contrast's statistics, confirmatory family (Holm within the contrast), sensitivity, GSEA,
# communication and figures under results/contrasts/{contrast}/ ({contrast} is
# <test>_vs_<reference>), by the same rules as the primary contrast's with the arms changed.
# Upstream jobs (QC to annotation, the expression sources, the sensitivity's labels and
# retrainings) are shared by every contrast; each job keeps only its two arms' cells
# (tmeflow.stats.select_arms).

CONTRAST_DIR = "results/contrasts/{contrast}"


use rule de_pseudobulk as de_pseudobulk_contrast with:
    output:
        tables=directory(f"{CONTRAST_DIR}/de/pseudobulk"),
        subtypes=directory(f"{CONTRAST_DIR}/de/pseudobulk_subtypes"),
        goi=f"{CONTRAST_DIR}/de/genes_of_interest.tsv",
        values=f"{CONTRAST_DIR}/de/pseudobulk_values.tsv",
        summary=report(
            f"{CONTRAST_DIR}/de/summary.tsv",
            caption="../report/de_summary.rst",
            category="10. Other contrasts",
            subcategory="{contrast}",
        ),
    log:
        "logs/de_pseudobulk_contrast/{contrast}.log",
    benchmark:
        "benchmarks/de_pseudobulk_contrast/{contrast}.tsv"
    params:
        reference=contrast_arm("reference"),
        test=contrast_arm("test"),


use rule de_pseudobulk_corrected as de_pseudobulk_corrected_contrast with:
    output:
        tables=directory(f"{CONTRAST_DIR}/de/ambient_corrected/pseudobulk"),
        subtypes=directory(f"{CONTRAST_DIR}/de/ambient_corrected/pseudobulk_subtypes"),
        goi=f"{CONTRAST_DIR}/de/ambient_corrected/genes_of_interest.tsv",
        values=f"{CONTRAST_DIR}/de/ambient_corrected/pseudobulk_values.tsv",
        summary=f"{CONTRAST_DIR}/de/ambient_corrected/summary.tsv",
    log:
        "logs/de_pseudobulk_corrected_contrast/{contrast}.log",
    benchmark:
        "benchmarks/de_pseudobulk_corrected_contrast/{contrast}.tsv"
    params:
        reference=contrast_arm("reference"),
        test=contrast_arm("test"),


use rule composition_test as composition_test_contrast with:
    output:
        proportions=f"{CONTRAST_DIR}/composition/proportions.tsv",
        test=report(
            f"{CONTRAST_DIR}/composition/test.tsv",
            caption="../report/composition_test.rst",
            category="10. Other contrasts",
            subcategory="{contrast}",
        ),
        denominators=f"{CONTRAST_DIR}/composition/denominators.tsv",
    log:
        "logs/composition_test_contrast/{contrast}.log",
    benchmark:
        "benchmarks/composition_test_contrast/{contrast}.tsv"
    params:
        reference=contrast_arm("reference"),
        test=contrast_arm("test"),


use rule confirmatory_test as confirmatory_test_contrast with:
    output:
        table=f"{CONTRAST_DIR}/confirmatory/tests.tsv",
        values=f"{CONTRAST_DIR}/confirmatory_values.tsv",
    log:
        "logs/confirmatory_test_contrast/{contrast}.log",
    benchmark:
        "benchmarks/confirmatory_test_contrast/{contrast}.tsv"
    params:
        reference=contrast_arm("reference"),
        test=contrast_arm("test"),


use rule confirmatory_sensitivity as confirmatory_sensitivity_contrast with:
    output:
        table=report(
            f"{CONTRAST_DIR}/sensitivity.tsv",
            caption="../report/sensitivity.rst",
            category="10. Other contrasts",
            subcategory="{contrast}",
        ),
    log:
        "logs/confirmatory_sensitivity_contrast/{contrast}.log",
    benchmark:
        "benchmarks/confirmatory_sensitivity_contrast/{contrast}.tsv"
    params:
        confirm_options=contrast_confirm_options,


use rule confirmatory_robustness as confirmatory_robustness_contrast with:
    input:
        table=f"{CONTRAST_DIR}/confirmatory/tests.tsv",
        sensitivity=f"{CONTRAST_DIR}/sensitivity.tsv",
    output:
        report(
            f"{CONTRAST_DIR}/confirmatory.tsv",
            caption="../report/confirmatory.rst",
            category="10. Other contrasts",
            subcategory="{contrast}",
        ),
    log:
        "logs/confirmatory_robustness_contrast/{contrast}.log",


use rule figures_confirmatory as figures_confirmatory_contrast with:
    input:
        table=f"{CONTRAST_DIR}/confirmatory.tsv",
        values=f"{CONTRAST_DIR}/confirmatory_values.tsv",
    output:
        figure(
            f"{CONTRAST_DIR}/figures/confirmatory",
            "confirmatory_figure",
            "10. Other contrasts",
            "{contrast}",
        ),
    log:
        "logs/figures_confirmatory_contrast/{contrast}.log",
    params:
        conditions=contrast_arms,


use rule figures_sensitivity as figures_sensitivity_contrast with:
    input:
        f"{CONTRAST_DIR}/sensitivity.tsv",
    output:
        grid=figure(
            f"{CONTRAST_DIR}/figures/sensitivity",
            "sensitivity_figure",
            "10. Other contrasts",
            "{contrast}",
        ),
        curve=figure(
            f"{CONTRAST_DIR}/figures/specification_curve",
            "specification_curve",
            "10. Other contrasts",
            "{contrast}",
        ),
    log:
        "logs/figures_sensitivity_contrast/{contrast}.log",


use rule figures_stats as figures_stats_contrast with:
    input:
        values=f"{CONTRAST_DIR}/de/pseudobulk_values.tsv",
        proportions=f"{CONTRAST_DIR}/composition/proportions.tsv",
        sources=expand("results/sources/{gene}.tsv", gene=GENES),
        de=f"{CONTRAST_DIR}/de/pseudobulk",
    output:
        goi=[
            f"{CONTRAST_DIR}/figures/goi_{g}.{ext}"
            for g in GENES
            for ext in ("png", "pdf")
        ],
        sources=[
            f"{CONTRAST_DIR}/figures/sources_{g}.{ext}"
            for g in GENES
            for ext in ("png", "pdf")
        ],
        composition=figure(
            f"{CONTRAST_DIR}/figures/composition",
            "composition",
            "10. Other contrasts",
            "{contrast}",
        ),
        volcano=directory(f"{CONTRAST_DIR}/figures/volcano"),
    log:
        "logs/figures_stats_contrast/{contrast}.log",
    benchmark:
        "benchmarks/figures_stats_contrast/{contrast}.tsv"
    params:
        conditions=contrast_arms,


use rule gsea_prerank as gsea_prerank_contrast with:
    input:
        de=f"{CONTRAST_DIR}/de/pseudobulk",
        gmts=config["gsea"]["gene_sets"],
        panel=config["annotation"]["panel"],
    output:
        tables=directory(f"{CONTRAST_DIR}/gsea/pseudobulk"),
        summary=report(
            f"{CONTRAST_DIR}/gsea/summary.tsv",
            caption="../report/gsea_summary.rst",
            category="10. Other contrasts",
            subcategory="{contrast}",
        ),
    log:
        "logs/gsea_prerank_contrast/{contrast}.log",
    benchmark:
        "benchmarks/gsea_prerank_contrast/{contrast}.tsv"


use rule figures_gsea as figures_gsea_contrast with:
    input:
        f"{CONTRAST_DIR}/gsea/pseudobulk",
    output:
        figure(
            f"{CONTRAST_DIR}/figures/gsea_dotplot",
            "gsea_dotplot",
            "10. Other contrasts",
            "{contrast}",
        ),
    log:
        "logs/figures_gsea_contrast/{contrast}.log",
    benchmark:
        "benchmarks/figures_gsea_contrast/{contrast}.tsv"


use rule communication_scores as communication_scores_contrast with:
    output:
        scores=f"{CONTRAST_DIR}/communication/scores.tsv",
        comparison=report(
            f"{CONTRAST_DIR}/communication/comparison.tsv",
            caption="../report/communication.rst",
            category="10. Other contrasts",
            subcategory="{contrast}",
        ),
        mapping=f"{CONTRAST_DIR}/communication/mapping.tsv",
    log:
        "logs/communication_scores_contrast/{contrast}.log",
    benchmark:
        "benchmarks/communication_scores_contrast/{contrast}.tsv"
    params:
        reference=contrast_arm("reference"),
        test=contrast_arm("test"),


use rule figures_communication as figures_communication_contrast with:
    input:
        scores=f"{CONTRAST_DIR}/communication/scores.tsv",
        comparison=f"{CONTRAST_DIR}/communication/comparison.tsv",
        table=f"{CONTRAST_DIR}/confirmatory.tsv",
        values=f"{CONTRAST_DIR}/confirmatory_values.tsv",
    output:
        [
            f
            for name in ("dotplot", "summary", "hypotheses")
            for f in figure(
                f"{CONTRAST_DIR}/figures/communication_{name}",
                f"communication_{name}",
                "10. Other contrasts",
                "{contrast}",
            )
        ],
    log:
        "logs/figures_communication_contrast/{contrast}.log",
    params:
        conditions=contrast_arms,
