# Read each sample's count matrix (10x HDF5, 10x mtx, h5ad, tables) into a per-sample AnnData.


rule ingest_sample:
    input:
        ingest_input,
    output:
        "results/ingest/{sample}.h5ad",
    log:
        "logs/ingest_sample/{sample}.log",
    conda:
        ENVS
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 20),
        runtime=20,
    params:
        path=lambda wc: SAMPLES.loc[wc.sample, "path"],
        condition=lambda wc: SAMPLES.loc[wc.sample, config["contrast"]["column"]],
        meta=sample_meta,
        fmt=sample_format,
    script:
        "../scripts/ingest_sample.py"
