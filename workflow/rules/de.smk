# Condition statistics: pseudobulk DE, genes of interest, composition, expression sources.


rule de_pseudobulk:
    input:
        "results/annotate/annotated.h5ad",
    output:
        tables=directory("results/de/pseudobulk"),
        goi="results/de/genes_of_interest.tsv",
        values="results/de/pseudobulk_values.tsv",
    params:
        condition_key=config["contrast"]["column"],
        reference=config["contrast"]["reference"],
        test=config["contrast"]["test"],
        genes=GENES,
        min_cells=config["de"]["min_cells"],
        min_replicates=config["de"]["min_replicates"],
        covariates=config["de"]["covariates"],
        alpha=config["de"]["alpha"],
        seed=config["seed"],
    log:
        "logs/de_pseudobulk/de_pseudobulk.log",
    benchmark:
        "benchmarks/de_pseudobulk/de_pseudobulk.tsv"
    threads: workflow.cores
    resources:
        mem_mb=mem_mb_for(3000, 20),
        runtime=60,
    conda:
        ENVS
    script:
        "../scripts/de_pseudobulk.py"


rule composition_test:
    input:
        "results/annotate/annotated.h5ad",
    output:
        proportions="results/composition/proportions.tsv",
        test="results/composition/test.tsv",
    params:
        condition_key=config["contrast"]["column"],
        reference=config["contrast"]["reference"],
        test=config["contrast"]["test"],
    log:
        "logs/composition_test/composition_test.log",
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 10),
        runtime=20,
    conda:
        ENVS
    script:
        "../scripts/composition_test.py"


rule sources_gene:
    input:
        "results/annotate/annotated.h5ad",
    output:
        table="results/sources/{gene}.tsv",
        subtypes="results/sources/{gene}.subtypes.tsv",
    params:
        condition_key=config["contrast"]["column"],
    log:
        "logs/sources_gene/{gene}.log",
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 10),
        runtime=20,
    conda:
        ENVS
    script:
        "../scripts/sources_gene.py"
