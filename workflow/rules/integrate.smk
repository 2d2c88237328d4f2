# Merge samples (features measured in every sample), the ambient-corrected counts
# (layers['counts_ambient_corrected'], every gene), highly variable genes (seurat_v3 per
# sample with logged fallbacks; per species in xenograft mode) and scVI (batch = sample).


rule integrate_merge:
    input:
        h5ads=expand("results/qc/{sample}.h5ad", sample=SAMPLE_IDS),
        # the summary fails when a whole condition has no cells: merge only after it
        summary="results/qc/summary.tsv",
    output:
        # temp: integrate_scvi is its only reader; integrated.h5ad keeps the same counts,
        # HVGs and uns (a scVI change re-runs the merge from the kept QC objects, seconds)
        h5ad=temp("results/integrate/merged.h5ad"),
        hvg="results/integrate/hvg.tsv",
        ambient="results/integrate/ambient.tsv",
    log:
        "logs/integrate_merge/integrate_merge.log",
    benchmark:
        "benchmarks/integrate_merge/integrate_merge.tsv"
    conda:
        "../envs/cluster.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(3000, 4),
        runtime=30,
    params:
        n_top_genes=config["hvg"]["n_top_genes"],
        fallback_span=config["hvg"]["fallback_span"],
        fallback_min_cells=config["hvg"]["fallback_min_cells"],
        min_species_fraction=config["hvg"]["min_species_fraction"],
        min_soup_umis=config["sources"]["min_soup_umis"],
    script:
        "../scripts/integrate_merge.py"


rule integrate_scvi:
    input:
        "results/integrate/merged.h5ad",
    output:
        h5ad="results/integrate/integrated.h5ad",
        history="results/integrate/scvi_history.tsv",
        # the trained model (no AnnData): tmeflow.embed.load_scvi reloads it
        model=directory("results/integrate/scvi_model"),
    log:
        "logs/integrate_scvi/integrate_scvi.log",
    benchmark:
        "benchmarks/integrate_scvi/integrate_scvi.tsv"
    conda:
        "../envs/scvi.yaml"
    # torch's CPU threads change X_scVI bit-wise: they come from the config (scvi.threads),
    # not from --cores, so that every machine trains the same model (the job asks for as many)
    threads: config["scvi"]["threads"]
    resources:
        mem_mb=mem_mb_for(4000, 4),
        runtime=runtime_for(120, 90),
    params:
        n_latent=config["scvi"]["n_latent"],
        n_hidden=config["scvi"]["n_hidden"],
        n_layers=config["scvi"]["n_layers"],
        max_epochs=config["scvi"]["max_epochs"],
        early_stopping=config["scvi"]["early_stopping"],
        patience=config["scvi"]["early_stopping_patience"],
        batch_size=config["scvi"]["batch_size"],
        accelerator=config["scvi"]["accelerator"],
        threads=config["scvi"]["threads"],
        seed=config["seed"],
    script:
        "../scripts/integrate_scvi.py"


# Integration quality (scib-metrics) of scVI vs unintegrated PCA, labels from the annotation.


rule integrate_metrics:
    input:
        "results/annotate/annotated.h5ad",
    output:
        metrics=report(
            "results/integrate/metrics.tsv",
            caption="../report/integration_metrics_table.rst",
            category="2. Cell atlas",
        ),
        condition="results/integrate/condition_signal.tsv",
        figure=figure(
            "results/figures/integration_metrics",
            "integration_metrics",
            "2. Cell atlas",
        ),
    log:
        "logs/integrate_metrics/integrate_metrics.log",
    benchmark:
        "benchmarks/integrate_metrics/integrate_metrics.tsv"
    conda:
        "../envs/scvi.yaml"
    threads: 1  # < 1 core busy at 2 (demo); 1 lets the stats jobs run side by side
    resources:
        mem_mb=mem_mb_for(4000, 6),
        runtime=runtime_for(60, 30),
    params:
        batch_key="sample",
        label_key="cell_type",
        condition_key=config["contrast"]["column"],
        n_comps=config["integration_metrics"]["n_comps"],
        min_cells=config["integration_metrics"]["min_cells"],
        min_samples=config["integration_metrics"]["min_samples"],
        min_signal=config["integration_metrics"]["min_signal"],
        min_retained=config["integration_metrics"]["min_retained"],
        kbet=config["integration_metrics"]["kbet"],
        max_cells=config["integration_metrics"]["max_cells"],
        seed=config["seed"],
    script:
        "../scripts/integrate_metrics.py"
