# Figures (PDF + PNG, deterministic bytes) in results/figures/.


UMAP_KEYS = ["cell_type", "cell_subtype", "condition", "sample", "species"]
FMT = ["pdf", "png"]
FIGURES = (
    expand("results/figures/umap_{key}.{ext}", key=UMAP_KEYS, ext=FMT)
    + expand(
        "results/figures/{name}.{ext}",
        name=["marker_dotplot", "composition"],
        ext=FMT,
    )
    + expand("results/figures/goi_{gene}.{ext}", gene=GENES, ext=FMT)
    + expand("results/figures/sources_{gene}.{ext}", gene=GENES, ext=FMT)
    + ["results/figures/volcano"]
)
FINAL_TARGETS += FIGURES


rule figures_umap:
    input:
        "results/annotate/annotated.h5ad",
    output:
        expand("results/figures/umap_{key}.{ext}", key=UMAP_KEYS, ext=FMT),
    log:
        "logs/figures_umap/figures_umap.log",
    conda:
        ENVS
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 10),
        runtime=20,
    params:
        umap_keys=UMAP_KEYS,
        conditions=[config["contrast"]["reference"], config["contrast"]["test"]],
    script:
        "../scripts/figures_umap.py"


rule figures_markers:
    input:
        h5ad="results/annotate/annotated.h5ad",
        panel=config["annotation"]["panel"],
    output:
        expand("results/figures/marker_dotplot.{ext}", ext=FMT),
    log:
        "logs/figures_markers/figures_markers.log",
    conda:
        ENVS
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 10),
        runtime=20,
    script:
        "../scripts/figures_markers.py"


rule figures_stats:
    input:
        values="results/de/pseudobulk_values.tsv",
        proportions="results/composition/proportions.tsv",
        sources=expand("results/sources/{gene}.tsv", gene=GENES),
        de="results/de/pseudobulk",
    output:
        goi=expand("results/figures/goi_{gene}.{ext}", gene=GENES, ext=FMT),
        sources=expand("results/figures/sources_{gene}.{ext}", gene=GENES, ext=FMT),
        composition=expand("results/figures/composition.{ext}", ext=FMT),
        volcano=directory("results/figures/volcano"),
    log:
        "logs/figures_stats/figures_stats.log",
    conda:
        ENVS
    threads: 1
    resources:
        mem_mb=2000,
        runtime=20,
    params:
        genes=GENES,
        conditions=[config["contrast"]["reference"], config["contrast"]["test"]],
        alpha=config["de"]["alpha"],
    script:
        "../scripts/figures_stats.py"
