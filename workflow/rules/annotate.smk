# Marker-based annotation of clusters (cell types) and re-clustered CAF/TAM (subtypes).


rule annotate_cells:
    input:
        h5ad="results/cluster/clustered.h5ad",
        panel=config["annotation"]["panel"],
        extra_panels=config["annotation"]["extra_panels"],
    output:
        h5ad="results/annotate/annotated.h5ad",
        scores="results/annotate/cluster_scores.tsv",
        labels="results/annotate/labels.tsv.gz",
        doublets=report(
            "results/annotate/doublet_scores.tsv",
            caption="../report/annotation_doublets.rst",
            category="3. Annotation",
            subcategory="Tables",
        ),
        heatmap=figure(
            "results/figures/annotation_scores", "annotation_scores", "3. Annotation"
        ),
    log:
        "logs/annotate_cells/annotate_cells.log",
    benchmark:
        "benchmarks/annotate_cells/annotate_cells.tsv"
    conda:
        "../envs/cluster.yaml"
    threads: 4
    resources:
        mem_mb=mem_mb_for(3000, 4),
        runtime=60,
    params:
        species=config["species"],
        min_score=config["annotation"]["min_score"],
        min_margin=config["annotation"]["min_margin"],
        subcluster_resolution=config["annotation"]["subcluster_resolution"],
        min_subcluster_cells=config["annotation"]["min_subcluster_cells"],
        refine_fraction=config["annotation"]["refine_fraction"],
        refine_resolution=config["annotation"]["refine_resolution"],
        n_neighbors=config["cluster"]["n_neighbors"],
        conditions=ARMS,
        seed=config["seed"],
    script:
        "../scripts/annotate_cells.py"
