# Ligand-receptor communication: mouse stromal ligands to human tumour receptors (and back)
# per animal, compared between the arms (tmeflow.stats._communication), and its figures.


rule communication_scores:
    input:
        h5ad="results/annotate/annotated.h5ad",
        orthologs=config["communication"]["orthologs"],
    output:
        scores="results/communication/scores.tsv",
        comparison=report(
            "results/communication/comparison.tsv",
            caption="../report/communication.rst",
            category="5. Communication",
        ),
        mapping="results/communication/mapping.tsv",
    log:
        "logs/communication_scores/communication_scores.log",
    benchmark:
        "benchmarks/communication_scores/communication_scores.tsv"
    conda:
        "../envs/stats.yaml"
    threads: 1
    resources:
        mem_mb=mem_mb_for(3000, 4),
        runtime=60,
    params:
        species=config["species"],
        condition_key=config["contrast"]["column"],
        reference=config["contrast"]["reference"],
        test=config["contrast"]["test"],
        min_cells=config["communication"]["min_cells"],
        expr_prop=config["communication"]["expr_prop"],
    script:
        "../scripts/communication_scores.py"


rule figures_communication:
    input:
        scores="results/communication/scores.tsv",
        comparison="results/communication/comparison.tsv",
        table="results/confirmatory.tsv",
        values="results/confirmatory_values.tsv",
    output:
        figure(
            "results/figures/communication_dotplot",
            "communication_dotplot",
            "5. Communication",
        ),
        figure(
            "results/figures/communication_summary",
            "communication_summary",
            "5. Communication",
        ),
        figure(
            "results/figures/communication_hypotheses",
            "communication_hypotheses",
            "5. Communication",
        ),
    log:
        "logs/figures_communication/figures_communication.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        conditions=[config["contrast"]["reference"], config["contrast"]["test"]],
        top_n=config["communication"]["top_n"],
        seed=config["seed"],
    script:
        "../scripts/figures_communication.py"
