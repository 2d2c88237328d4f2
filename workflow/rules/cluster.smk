# Neighbours on X_scVI, UMAP, a Leiden resolution sweep and Leiden at the chosen resolution.


rule cluster_leiden:
    input:
        "results/integrate/integrated.h5ad",
    output:
        h5ad="results/cluster/clustered.h5ad",
        sweep="results/cluster/resolution_sweep.tsv",
        figure=figure(
            "results/figures/resolution_sweep", "resolution_sweep", "2. Cell atlas"
        ),
    log:
        "logs/cluster_leiden/cluster_leiden.log",
    benchmark:
        "benchmarks/cluster_leiden/cluster_leiden.tsv"
    conda:
        "../envs/cluster.yaml"
    threads: 4
    resources:
        mem_mb=mem_mb_for(3000, 4),
        runtime=runtime_for(60, 30),
    params:
        n_neighbors=config["cluster"]["n_neighbors"],
        resolution=config["cluster"]["resolution"],
        resolution_choice=config["cluster"]["resolution_choice"],
        sweep_resolutions=config["cluster"]["sweep_resolutions"],
        sweep_seeds=config["cluster"]["sweep_seeds"],
        stability_tolerance=config["cluster"]["stability_tolerance"],
        seed=config["seed"],
    script:
        "../scripts/cluster_leiden.py"
