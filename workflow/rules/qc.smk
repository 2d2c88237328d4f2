# Per-sample QC: MAD thresholds per sample and species, hard floors, doublets (scrublet and a
# cluster-aware caller per species);
# the summary explains every barcode; per-sample QC and contamination figures.


rule qc_filter:
    input:
        "results/species/{sample}.h5ad",
    output:
        h5ad="results/qc/{sample}.h5ad",
        metrics="results/qc/{sample}.metrics.tsv",
        cells="results/qc/{sample}.cells.tsv.gz",
    log:
        "logs/qc_filter/{sample}.log",
    benchmark:
        "benchmarks/qc_filter/{sample}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 6),
        runtime=30,
    params:
        nmads_counts=config["qc"]["nmads_counts"],
        nmads_genes=config["qc"]["nmads_genes"],
        nmads_mito=config["qc"]["nmads_mito"],
        min_counts=config["qc"]["min_counts"],
        min_genes=config["qc"]["min_genes"],
        max_pct_mito=config["qc"]["max_pct_mito"],
        doublets=config["qc"]["doublets"],
        doublet_method=config["qc"]["doublet_method"],
        doublet_consensus=config["qc"]["doublet_consensus"],
        doublet_confident=config["qc"]["doublet_confident"],
        doublet_cluster_cap=config["qc"]["doublet_cluster_cap"],
        seed=config["seed"],
    script:
        "../scripts/qc_filter.py"


rule qc_summary:
    input:
        ingest=expand("results/ingest/{sample}.tsv", sample=SAMPLE_IDS),
        species=expand("results/species/{sample}.tsv", sample=SAMPLE_IDS),
        metrics=expand("results/qc/{sample}.metrics.tsv", sample=SAMPLE_IDS),
        # feature names only (which features each sample measured)
        h5ads=expand("results/qc/{sample}.h5ad", sample=SAMPLE_IDS),
    output:
        report(
            "results/qc/summary.tsv",
            caption="../report/qc_summary.rst",
            category="1. Quality control",
            subcategory="Tables",
        ),
    log:
        "logs/qc_summary/qc_summary.log",
    benchmark:
        "benchmarks/qc_summary/qc_summary.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        conditions=sample_conditions(),
        samples=SAMPLE_IDS,
    script:
        "../scripts/qc_summary.py"


rule qc_plots:
    input:
        cells="results/qc/{sample}.cells.tsv.gz",
        metrics="results/qc/{sample}.metrics.tsv",
    output:
        figure("results/qc/plots/{sample}", "qc", "1. Quality control", "{sample}"),
    log:
        "logs/qc_plots/{sample}.log",
    benchmark:
        "benchmarks/qc_plots/{sample}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/qc_plots.py"


rule qc_contamination_plot:
    input:
        "results/qc/summary.tsv",
    output:
        figure(
            "results/figures/qc_contamination",
            "qc_contamination",
            "1. Quality control",
        ),
    log:
        "logs/qc_contamination_plot/qc_contamination_plot.log",
    benchmark:
        "benchmarks/qc_contamination_plot/qc_contamination_plot.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        conditions=ARMS,
    script:
        "../scripts/qc_contamination_plot.py"


rule qc_crossspecies_plot:
    input:
        "results/species/{sample}.h5ad",
    output:
        figure(
            "results/qc/plots/{sample}.crossspecies",
            "qc_crossspecies",
            "1. Quality control",
            "{sample}",
        ),
    log:
        "logs/qc_crossspecies_plot/{sample}.log",
    benchmark:
        "benchmarks/qc_crossspecies_plot/{sample}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(1000, 1),
        runtime=10,
    script:
        "../scripts/qc_crossspecies_plot.py"


rule qc_removed_labels:
    input:
        annotated="results/annotate/annotated.h5ad",
        # the trained scVI encoder embeds the removed cells beside the kept ones
        model="results/integrate/scvi_model",
        species=expand("results/species/{sample}.h5ad", sample=SAMPLE_IDS),
        cells=expand("results/qc/{sample}.cells.tsv.gz", sample=SAMPLE_IDS),
    output:
        table=report(
            "results/qc/removed_by_label.tsv",
            caption="../report/qc_removed_by_label.rst",
            category="1. Quality control",
            subcategory="Tables",
        ),
        flags="results/qc/removed_flags.tsv",
        cells="results/qc/removed_cells.tsv.gz",
        # the cells removed as doublets or mixed species, labelled: the sensitivity's
        # "doublets off" and looser min_fraction settings add them back
        h5ad="results/qc/removed_cells.h5ad",
    log:
        "logs/qc_removed_labels/qc_removed_labels.log",
    benchmark:
        "benchmarks/qc_removed_labels/qc_removed_labels.tsv"
    conda:
        "../envs/scvi.yaml"
    threads: 1  # the encoder's torch and the kNN on one core
    resources:
        mem_mb=mem_mb_for(2000, 3),
        runtime=30,
    params:
        conditions=sample_conditions(),
        k=15,
        seed=config["seed"],
    script:
        "../scripts/qc_removed_labels.py"


rule qc_removed_plot:
    input:
        table="results/qc/removed_by_label.tsv",
        flags="results/qc/removed_flags.tsv",
    output:
        figure(
            "results/figures/qc_removed_by_label",
            "qc_removed_by_label",
            "1. Quality control",
        ),
    log:
        "logs/qc_removed_plot/qc_removed_plot.log",
    benchmark:
        "benchmarks/qc_removed_plot/qc_removed_plot.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        conditions=ARMS,
    script:
        "../scripts/qc_removed_plot.py"
