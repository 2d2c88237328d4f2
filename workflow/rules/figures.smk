# Figures (PDF + PNG, deterministic bytes) in results/figures/.


rule figures_umap:
    input:
        "results/annotate/annotated.h5ad",
    output:
        [
            f
            for key in UMAP_KEYS
            for f in figure(
                f"results/figures/umap_{key}", f"umap_{key}", "2. Cell atlas", "UMAP"
            )
        ],
    log:
        "logs/figures_umap/figures_umap.log",
    benchmark:
        "benchmarks/figures_umap/figures_umap.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 3),
        runtime=20,
    params:
        umap_keys=UMAP_KEYS,
        conditions=ARMS,
    script:
        "../scripts/figures_umap.py"


rule figures_markers:
    input:
        h5ad="results/annotate/annotated.h5ad",
        panel=config["annotation"]["panel"],
    output:
        figure("results/figures/marker_dotplot", "marker_dotplot", "3. Annotation"),
    log:
        "logs/figures_markers/figures_markers.log",
    benchmark:
        "benchmarks/figures_markers/figures_markers.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(2000, 3),
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
        goi=[
            f
            for g in GENES
            for f in figure(
                f"results/figures/goi_{g}", "goi", "4. Genes of interest", g
            )
        ],
        sources=[
            f
            for g in GENES
            for f in figure(
                f"results/figures/sources_{g}", "sources", "5. Expression sources", g
            )
        ],
        composition=figure(
            "results/figures/composition", "composition", "6. Composition"
        ),
        volcano=report(
            directory("results/figures/volcano"),
            patterns=["{name}.png"],
            caption="../report/volcano.rst",
            category="7. Differential expression",
            subcategory="Volcano plots",
        ),
    log:
        "logs/figures_stats/figures_stats.log",
    benchmark:
        "benchmarks/figures_stats/figures_stats.tsv"
    conda:
        "../envs/core.yaml"
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


rule figures_confirmatory:
    input:
        table="results/confirmatory.tsv",
        values="results/confirmatory_values.tsv",
    output:
        figure(
            "results/figures/confirmatory",
            "confirmatory_figure",
            "0. Confirmatory hypotheses",
        ),
    log:
        "logs/figures_confirmatory/figures_confirmatory.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        conditions=[config["contrast"]["reference"], config["contrast"]["test"]],
        seed=config["seed"],
    script:
        "../scripts/figures_confirmatory.py"


rule figures_sensitivity:
    input:
        "results/sensitivity.tsv",
    output:
        grid=figure(
            "results/figures/sensitivity",
            "sensitivity_figure",
            "0. Confirmatory hypotheses",
        ),
        curve=figure(
            "results/figures/specification_curve",
            "specification_curve",
            "0. Confirmatory hypotheses",
        ),
    log:
        "logs/figures_sensitivity/figures_sensitivity.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        "../scripts/figures_sensitivity.py"
