# Condition statistics: pseudobulk DE, genes of interest, composition, expression sources.
# These rules compare the primary contrast; contrasts.smk runs them for the others.


rule de_pseudobulk:
    input:
        "results/annotate/annotated.h5ad",
    output:
        tables=directory("results/de/pseudobulk"),
        subtypes=directory("results/de/pseudobulk_subtypes"),
        goi=report(
            "results/de/genes_of_interest.tsv",
            caption="../report/genes_of_interest.rst",
            category="4. Genes of interest",
            subcategory="Tables",
        ),
        values="results/de/pseudobulk_values.tsv",
        summary=report(
            "results/de/summary.tsv",
            caption="../report/de_summary.rst",
            category="7. Differential expression",
        ),
    log:
        "logs/de_pseudobulk/de_pseudobulk.log",
    benchmark:
        "benchmarks/de_pseudobulk/de_pseudobulk.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1  # < 1 core busy at 2 (demo); 1 lets the stats jobs run side by side
    resources:
        mem_mb=mem_mb_for(3000, 4),
        runtime=60,
    params:
        condition_key=config["contrast"]["column"],
        reference=config["contrast"]["reference"],
        test=config["contrast"]["test"],
        genes=GENES,
        min_cells=config["de"]["min_cells"],
        min_replicates=config["de"]["min_replicates"],
        covariates=config["de"]["covariates"],
        alpha=config["de"]["alpha"],
        subtypes=config["de"]["subtypes"],
        seed=config["seed"],
        layer="counts",
    script:
        "../scripts/de_pseudobulk.py"


# The same DE and genes-of-interest report on the ambient-corrected counts (de.ambient_corrected),
# beside the uncorrected ones.


use rule de_pseudobulk as de_pseudobulk_corrected with:
    output:
        tables=directory("results/de/ambient_corrected/pseudobulk"),
        subtypes=directory("results/de/ambient_corrected/pseudobulk_subtypes"),
        goi="results/de/ambient_corrected/genes_of_interest.tsv",
        values="results/de/ambient_corrected/pseudobulk_values.tsv",
        summary="results/de/ambient_corrected/summary.tsv",
    log:
        "logs/de_pseudobulk_corrected/de_pseudobulk_corrected.log",
    benchmark:
        "benchmarks/de_pseudobulk_corrected/de_pseudobulk_corrected.tsv"
    params:
        layer="counts_ambient_corrected",


rule composition_test:
    input:
        "results/annotate/annotated.h5ad",
    output:
        proportions="results/composition/proportions.tsv",
        test=report(
            "results/composition/test.tsv",
            caption="../report/composition_test.rst",
            category="6. Composition",
        ),
        denominators=report(
            "results/composition/denominators.tsv",
            caption="../report/composition_denominators.rst",
            category="6. Composition",
        ),
    log:
        "logs/composition_test/composition_test.log",
    benchmark:
        "benchmarks/composition_test/composition_test.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 3),
        runtime=20,
    params:
        condition_key=config["contrast"]["column"],
        reference=config["contrast"]["reference"],
        test=config["contrast"]["test"],
        method=config["composition"]["method"],
        immune_types=config["composition"]["immune_types"],
        alpha=config["de"]["alpha"],
    script:
        "../scripts/composition_test.py"


rule sources_gene:
    input:
        "results/annotate/annotated.h5ad",
    output:
        table=report(
            "results/sources/{gene}.tsv",
            caption="../report/sources_table.rst",
            category="5. Expression sources",
            subcategory="{gene}",
        ),
        subtypes="results/sources/{gene}.subtypes.tsv",
        samples="results/sources/{gene}.samples.tsv",
    log:
        "logs/sources_gene/{gene}.log",
    benchmark:
        "benchmarks/sources_gene/{gene}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 3),
        runtime=20,
    params:
        condition_key=config["contrast"]["column"],
        layer="counts",
    script:
        "../scripts/sources_gene.py"


# The source tables on the ambient-corrected counts (sources.ambient_correction), beside the
# uncorrected ones.


use rule sources_gene as sources_gene_corrected with:
    output:
        table="results/sources/ambient_corrected/{gene}.tsv",
        subtypes="results/sources/ambient_corrected/{gene}.subtypes.tsv",
        samples="results/sources/ambient_corrected/{gene}.samples.tsv",
    log:
        "logs/sources_gene_corrected/{gene}.log",
    benchmark:
        "benchmarks/sources_gene_corrected/{gene}.tsv"
    params:
        layer="counts_ambient_corrected",


rule sources_primary:
    input:
        types=expand("results/sources/{gene}.tsv", gene=GENES),
        subtypes=expand("results/sources/{gene}.subtypes.tsv", gene=GENES),
        samples=expand("results/sources/{gene}.samples.tsv", gene=GENES),
    output:
        report(
            "results/sources/primary_sources.tsv",
            caption="../report/primary_sources_table.rst",
            category="5. Expression sources",
        ),
    log:
        "logs/sources_primary/sources_primary.log",
    benchmark:
        "benchmarks/sources_primary/sources_primary.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        min_share=config["sources"]["min_share"],
        ambient_correction=config["sources"]["ambient_correction"],
    script:
        "../scripts/sources_primary.py"


use rule sources_primary as sources_primary_corrected with:
    input:
        types=expand("results/sources/ambient_corrected/{gene}.tsv", gene=GENES),
        subtypes=expand(
            "results/sources/ambient_corrected/{gene}.subtypes.tsv", gene=GENES
        ),
        samples=expand(
            "results/sources/ambient_corrected/{gene}.samples.tsv", gene=GENES
        ),
    output:
        "results/sources/ambient_corrected/primary_sources.tsv",
    log:
        "logs/sources_primary_corrected/sources_primary_corrected.log",
    benchmark:
        "benchmarks/sources_primary_corrected/sources_primary_corrected.tsv"
    params:
        ambient_correction=True,


rule figures_sources:
    input:
        primary="results/sources/primary_sources.tsv",
        samples=expand("results/sources/{gene}.samples.tsv", gene=GENES),
    output:
        figure(
            "results/figures/primary_sources",
            "primary_sources",
            "5. Expression sources",
        ),
    log:
        "logs/figures_sources/figures_sources.log",
    benchmark:
        "benchmarks/figures_sources/figures_sources.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        conditions=ARMS,
        seed=config["seed"],
    script:
        "../scripts/figures_sources.py"


rule confirmatory_test:
    input:
        "results/annotate/annotated.h5ad",
    output:
        # the verdicts before their robustness columns (confirmatory_robustness)
        table="results/confirmatory/tests.tsv",
        values="results/confirmatory_values.tsv",
    log:
        "logs/confirmatory_test/confirmatory_test.log",
    benchmark:
        "benchmarks/confirmatory_test/confirmatory_test.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1  # < 1 core busy at 2 (demo); 1 lets the stats jobs run side by side
    resources:
        mem_mb=mem_mb_for(3000, 4),
        runtime=60,
    params:
        hypotheses=config["hypotheses"],
        condition_key=config["contrast"]["column"],
        reference=config["contrast"]["reference"],
        test=config["contrast"]["test"],
        min_cells=config["de"]["min_cells"],
        min_replicates=config["de"]["min_replicates"],
        covariates=config["de"]["covariates"],
        alpha=config["hypotheses_alpha"],
        min_share=config["sources"]["min_share"],
        immune_types=config["composition"]["immune_types"],
        de_method=config["hypotheses_de_method"],
    script:
        "../scripts/confirmatory_test.py"


rule sensitivity_labels:
    input:
        h5ad="results/annotate/annotated.h5ad",
        panel=config["annotation"]["panel"],
        extra_panels=config["annotation"]["extra_panels"],
    output:
        labels="results/sensitivity/labels.tsv.gz",
        settings="results/sensitivity/label_settings.tsv",
    log:
        "logs/sensitivity_labels/sensitivity_labels.log",
    benchmark:
        "benchmarks/sensitivity_labels/sensitivity_labels.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1  # Leiden and the marker scores run on one core
    resources:
        mem_mb=mem_mb_for(3000, 3),
        runtime=runtime_for(30, 60),
    params:
        resolutions=(
            config["cluster"]["sweep_resolutions"]
            if config["sensitivity"]["resolutions"] == "sweep"
            else config["sensitivity"]["resolutions"]
        ),
        min_scores=config["sensitivity"]["min_score"],
        min_margins=config["sensitivity"]["min_margin"],
        subcluster_resolutions=config["sensitivity"]["subcluster_resolution"],
        min_subcluster_cells=config["sensitivity"]["min_subcluster_cells"],
        marker_out=config["sensitivity"]["marker_out"],
        annotate_options={
            "species_mode": config["species"],
            "min_score": config["annotation"]["min_score"],
            "min_margin": config["annotation"]["min_margin"],
            "subcluster_resolution": config["annotation"]["subcluster_resolution"],
            "min_subcluster_cells": config["annotation"]["min_subcluster_cells"],
            "refine_fraction": config["annotation"]["refine_fraction"],
            "refine_resolution": config["annotation"]["refine_resolution"],
            "n_neighbors": config["cluster"]["n_neighbors"],
            "seed": config["seed"],
        },
    script:
        "../scripts/sensitivity_labels.py"


rule sensitivity_retrain:
    input:
        h5ad="results/integrate/integrated.h5ad",
        clustered="results/cluster/clustered.h5ad",
        panel=config["annotation"]["panel"],
        extra_panels=config["annotation"]["extra_panels"],
    output:
        labels="results/sensitivity/retrain/{variant}.tsv.gz",
        note="results/sensitivity/retrain/{variant}.note.tsv",
    log:
        "logs/sensitivity_retrain/{variant}.log",
    benchmark:
        "benchmarks/sensitivity_retrain/{variant}.tsv"
    wildcard_constraints:
        variant="|".join(RETRAIN_VARIANTS) if RETRAIN_VARIANTS else "NONE",
    conda:
        "../envs/scvi.yaml"
    # as integrate_scvi: torch's threads come from the config (scvi.threads)
    threads: config["scvi"]["threads"]
    resources:
        mem_mb=mem_mb_for(4000, 4),
        runtime=runtime_for(120, 90),
    params:
        scvi_options={
            "n_latent": config["scvi"]["n_latent"],
            "n_hidden": config["scvi"]["n_hidden"],
            "n_layers": config["scvi"]["n_layers"],
            "max_epochs": config["scvi"]["max_epochs"],
            "early_stopping": config["scvi"]["early_stopping"],
            "patience": config["scvi"]["early_stopping_patience"],
            "batch_size": config["scvi"]["batch_size"],
            "accelerator": config["scvi"]["accelerator"],
            "threads": config["scvi"]["threads"],
        },
        hvg_options={
            "batch_key": "sample",
            "fallback_span": config["hvg"]["fallback_span"],
            "fallback_min_cells": config["hvg"]["fallback_min_cells"],
            "min_species_fraction": config["hvg"]["min_species_fraction"],
        },
        n_neighbors=config["cluster"]["n_neighbors"],
        seed=config["seed"],
        annotate_options={
            "species_mode": config["species"],
            "min_score": config["annotation"]["min_score"],
            "min_margin": config["annotation"]["min_margin"],
            "subcluster_resolution": config["annotation"]["subcluster_resolution"],
            "min_subcluster_cells": config["annotation"]["min_subcluster_cells"],
            "refine_fraction": config["annotation"]["refine_fraction"],
            "refine_resolution": config["annotation"]["refine_resolution"],
            "n_neighbors": config["cluster"]["n_neighbors"],
            "seed": config["seed"],
        },
    script:
        "../scripts/sensitivity_retrain.py"


rule confirmatory_sensitivity:
    input:
        h5ad="results/annotate/annotated.h5ad",
        labels=rules.sensitivity_labels.output.labels,
        settings=rules.sensitivity_labels.output.settings,
        removed=rules.qc_removed_labels.output.h5ad,
        retrain=expand(
            "results/sensitivity/retrain/{variant}.tsv.gz", variant=RETRAIN_VARIANTS
        ),
        retrain_notes=expand(
            "results/sensitivity/retrain/{variant}.note.tsv", variant=RETRAIN_VARIANTS
        ),
    output:
        table=report(
            "results/sensitivity.tsv",
            caption="../report/sensitivity.rst",
            category="0. Confirmatory hypotheses",
        ),
    log:
        "logs/confirmatory_sensitivity/confirmatory_sensitivity.log",
    benchmark:
        "benchmarks/confirmatory_sensitivity/confirmatory_sensitivity.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1  # < 1 core busy at 2 (demo); 1 lets the stats jobs run side by side
    resources:
        mem_mb=mem_mb_for(4000, 5),
        runtime=runtime_for(60, 60),
    params:
        hypotheses=config["hypotheses"],
        min_fractions=config["sensitivity"]["min_fraction"],
        de_min_cells=config["sensitivity"]["de_min_cells"],
        de_methods=config["sensitivity"]["de_methods"],
        subtypes=config["sensitivity"]["subtypes"],
        min_fraction=config["species_calling"]["min_fraction"],
        doublets=config["qc"]["doublets"],
        species_mode=config["species"],
        confirm_options=CONFIRM_OPTIONS,
    script:
        "../scripts/confirmatory_sensitivity.py"


rule confirmatory_robustness:
    input:
        table=rules.confirmatory_test.output.table,
        sensitivity=rules.confirmatory_sensitivity.output.table,
    output:
        report(
            "results/confirmatory.tsv",
            caption="../report/confirmatory.rst",
            category="0. Confirmatory hypotheses",
        ),
    log:
        "logs/confirmatory_robustness/confirmatory_robustness.log",
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/confirmatory_robustness.py"
