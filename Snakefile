# tmeflow: tumour micro-environment of xenograft single-cell RNA-seq.
# Run: snakemake --cores N [--configfile my.yaml]; see README.md.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


# Validation of the config and the sample sheet happens at parse time in common.smk.
include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/species.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/integrate.smk"
include: "workflow/rules/cluster.smk"
include: "workflow/rules/annotate.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/de.smk"
include: "workflow/rules/gsea.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
