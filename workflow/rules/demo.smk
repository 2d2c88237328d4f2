# The embedded simulated xenograft demo (deterministic from the seed; no download).


rule demo_simulate:
    input:
        gene_pool=DEMO_GENE_POOL,
        panel=config["annotation"]["panel"],
    output:
        DEMO_OUTPUTS,
    log:
        "logs/demo_simulate/demo_simulate.log",
    benchmark:
        "benchmarks/demo_simulate/demo_simulate.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=20,
    params:
        n_replicates=config["demo"]["n_replicates"],
        cells_per_sample=config["demo"]["cells_per_sample"],
        n_genes_mouse=config["demo"]["n_genes_mouse"],
        n_genes_human=config["demo"]["n_genes_human"],
        conditions=ARMS,
        seed=config["seed"],
    script:
        "../scripts/demo_simulate.py"
