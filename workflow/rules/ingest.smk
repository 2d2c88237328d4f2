# Read each sample's count matrix (10x HDF5, 10x/GEO mtx, h5ad, tables, GEO _RAW.tar bundles;
# local or http(s))
# into a per-sample AnnData; call cells in unfiltered (raw) droplet matrices.


rule download_sample:
    input:
        download_source,
    output:
        "resources/download/{sample}/{filename}",
    log:
        "logs/download_sample/{sample}/{filename}.log",
    benchmark:
        "benchmarks/download_sample/{sample}/{filename}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=60,
    params:
        url=lambda wc: _download(wc)[0],
        sha256=lambda wc: _download(wc)[1],
    script:
        "../scripts/download_sample.py"


rule ingest_sample:
    input:
        ingest_input,
    output:
        # temp: species_assign is its only reader (a QC change re-runs ingest, seconds)
        h5ad=temp("results/ingest/{sample}.h5ad"),
        table="results/ingest/{sample}.tsv",
    log:
        "logs/ingest_sample/{sample}.log",
    benchmark:
        "benchmarks/ingest_sample/{sample}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 4),
        runtime=20,
    params:
        path=lambda wc: SAMPLES.loc[wc.sample, "path"],
        condition=lambda wc: SAMPLES.loc[wc.sample, config["contrast"]["column"]],
        meta=sample_meta,
        fmt=sample_format,
        obs_column=lambda wc: _sheet_value(wc.sample, "obs_column"),
        obs_value=lambda wc: _sheet_value(wc.sample, "obs_value"),
        member=lambda wc: _sheet_value(wc.sample, "member"),
        cell_calling=config["ingest"]["cell_calling"],
        raw_min_barcodes=config["ingest"]["raw_min_barcodes"],
        min_umi=config["ingest"]["min_umi"],
        species=config["species"],
        symbol_case=config["ingest"]["symbol_case"],
        symbol_panels=[
            config["annotation"]["panel"],
            *config["annotation"]["extra_panels"],
        ],
        symbol_gene_sets=config["gsea"]["gene_sets"],
        genes=GENES,
    script:
        "../scripts/ingest_sample.py"
