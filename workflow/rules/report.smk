# Provenance record and the Snakemake report's front page. The provenance job runs after every
# other output of the workflow (get_final_output in common.smk, without the record itself).
import copy

from tmeflow.core import KEY_PACKAGES


report: "../report/workflow.rst"


rule provenance:
    input:
        matrices=provenance_matrices,
        outputs=get_final_output(include_provenance=False),
        hvg="results/integrate/hvg.tsv",
    output:
        record=report(
            "results/provenance.json",
            caption="../report/provenance.rst",
            category="9. Provenance",
        ),
        times="results/provenance_times.json",
    log:
        "logs/provenance/provenance.log",
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=copy.deepcopy(dict(config)),
        packages=list(KEY_PACKAGES),
    script:
        "../scripts/provenance.py"
