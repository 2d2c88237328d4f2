# Preranked GSEA of each cell type's pseudobulk statistic against shipped gene sets (offline).


rule gsea_prerank:
    input:
        de="results/de/pseudobulk",
        gmts=config["gsea"]["gene_sets"],
        panel=config["annotation"]["panel"],
    output:
        tables=directory("results/gsea/pseudobulk"),
        summary=report(
            "results/gsea/summary.tsv",
            caption="../report/gsea_summary.rst",
            category="8. Gene set enrichment",
        ),
    log:
        "logs/gsea_prerank/gsea_prerank.log",
    benchmark:
        "benchmarks/gsea_prerank/gsea_prerank.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1  # < 1 core busy at 2 (demo); 1 lets the stats jobs run side by side
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        marker_sets=config["gsea"]["marker_sets"],
        permutations=config["gsea"]["permutations"],
        min_size=config["gsea"]["min_size"],
        max_size=config["gsea"]["max_size"],
        fdr=config["gsea"]["fdr"],
        seed=config["seed"],
    script:
        "../scripts/gsea_prerank.py"


rule figures_gsea:
    input:
        "results/gsea/pseudobulk",
    output:
        figure("results/figures/gsea_dotplot", "gsea_dotplot", "8. Gene set enrichment"),
    log:
        "logs/figures_gsea/figures_gsea.log",
    benchmark:
        "benchmarks/figures_gsea/figures_gsea.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        top=config["gsea"]["top_terms"],
    script:
        "../scripts/figures_gsea.py"
