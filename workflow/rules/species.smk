# Per-cell species (human tumour / mouse stroma / mixed) from the combined reference.


rule species_assign:
    input:
        "results/ingest/{sample}.h5ad",
    output:
        # temp: read by qc_filter and qc_crossspecies_plot only
        h5ad=temp("results/species/{sample}.h5ad"),
        table="results/species/{sample}.tsv",
    log:
        "logs/species_assign/{sample}.log",
    benchmark:
        "benchmarks/species_assign/{sample}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 4),
        runtime=20,
    params:
        mode=config["species"],
        min_fraction=config["species_calling"]["min_fraction"],
        crossspecies_fdr=config["species_calling"]["crossspecies_fdr"],
        min_soup_umis=config["sources"]["min_soup_umis"],
    script:
        "../scripts/species_assign.py"
