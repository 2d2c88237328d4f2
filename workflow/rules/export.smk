# Export of the annotated object in the CELLxGENE schema: one h5ad per species.


rule export_cellxgene:
    input:
        h5ad="results/annotate/annotated.h5ad",
    output:
        expand("results/export/{species}.h5ad", species=EXPORT_SPECIES),
    log:
        "logs/export_cellxgene/export_cellxgene.log",
    benchmark:
        "benchmarks/export_cellxgene/export_cellxgene.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 4),
        runtime=30,
    params:
        settings=config["export"],
    script:
        "../scripts/export_cellxgene.py"


# The same cells for R users: a folder per species that workflow/scripts/R/read_tmeflow.R loads
# as a SingleCellExperiment or a Seurat object (plain files, no Python bridge in R).


rule export_r:
    input:
        "results/export/{species}.h5ad",
    output:
        directory("results/export/r/{species}"),
    log:
        "logs/export_r/{species}.log",
    benchmark:
        "benchmarks/export_r/{species}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 4),
        runtime=30,
    script:
        "../scripts/export_r.py"
