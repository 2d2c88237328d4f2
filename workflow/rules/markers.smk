# Marker genes of each cluster and each cell type (Wilcoxon within each species' cells).


rule markers_rank:
    input:
        h5ad="results/annotate/annotated.h5ad",
    output:
        clusters=report(
            "results/markers/clusters.tsv",
            caption="../report/markers_table.rst",
            category="3. Annotation",
            subcategory="Marker genes",
        ),
        cell_types=report(
            "results/markers/cell_types.tsv",
            caption="../report/markers_table.rst",
            category="3. Annotation",
            subcategory="Marker genes",
        ),
        notes="results/markers/notes.tsv",
        # the rankings in scanpy's uns["rank_genes_groups"] layout (a cell-less AnnData)
        scanpy="results/markers/rank_genes_groups.h5ad",
        dotplot=figure(
            "results/figures/cluster_markers",
            "cluster_markers",
            "3. Annotation",
            "Marker genes",
        ),
    log:
        "logs/markers_rank/markers_rank.log",
    benchmark:
        "benchmarks/markers_rank/markers_rank.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(3000, 4),
        runtime=60,
    params:
        n_genes=config["markers"]["n_genes"],
    script:
        "../scripts/markers_rank.py"
