# Per-sample QC: MAD thresholds per sample and species, hard floors, scrublet doublets.

FINAL_TARGETS += ["results/qc/summary.tsv"]


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
        ENVS
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 30),
        runtime=30,
    params:
        nmads_counts=config["qc"]["nmads_counts"],
        nmads_genes=config["qc"]["nmads_genes"],
        nmads_mito=config["qc"]["nmads_mito"],
        min_counts=config["qc"]["min_counts"],
        min_genes=config["qc"]["min_genes"],
        max_pct_mito=config["qc"]["max_pct_mito"],
        doublets=config["qc"]["doublets"],
        seed=config["seed"],
    script:
        "../scripts/qc_filter.py"


rule qc_summary:
    input:
        metrics=expand("results/qc/{sample}.metrics.tsv", sample=SAMPLE_IDS),
        species=expand("results/species/{sample}.tsv", sample=SAMPLE_IDS),
    output:
        "results/qc/summary.tsv",
    log:
        "logs/qc_summary/qc_summary.log",
    conda:
        ENVS
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/qc_summary.py"
