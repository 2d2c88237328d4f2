# Neighbours on X_scVI, UMAP and Leiden.


rule cluster_leiden:
    input:
        "results/integrate/integrated.h5ad",
    output:
        "results/cluster/clustered.h5ad",
    log:
        "logs/cluster_leiden/cluster_leiden.log",
    benchmark:
        "benchmarks/cluster_leiden/cluster_leiden.tsv"
    conda:
        ENVS
    threads: workflow.cores
    resources:
        mem_mb=mem_mb_for(3000, 20),
        runtime=60,
    params:
        n_neighbors=config["cluster"]["n_neighbors"],
        resolution=config["cluster"]["resolution"],
        seed=config["seed"],
    script:
        "../scripts/cluster_leiden.py"
