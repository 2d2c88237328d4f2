# Provenance record and the Snakemake report's front page. Included last by the Snakefile, so
# FINAL_TARGETS already lists every other stage's outputs; the provenance job runs after them.
import copy

from tmeflow.provenance import KEY_PACKAGES


report: "../report/workflow.rst"


PROVENANCE_AFTER = list(FINAL_TARGETS)
FINAL_TARGETS += ["results/provenance.json"]


rule provenance:
    input:
        matrices=provenance_matrices,
        outputs=PROVENANCE_AFTER,
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
        ENVS
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        config=copy.deepcopy(dict(config)),
        packages=list(KEY_PACKAGES),
    script:
        "../scripts/provenance.py"
