# tmeflow: tumour micro-environment of xenograft single-cell RNA-seq.
# The workflow lives in workflow/Snakefile (Snakemake's standard layout, as the workflow
# catalog expects); this file only includes it, so `snakemake` from the repository root and
# `snakemake -s workflow/Snakefile` run the same workflow. See README.md.
#
# The include is written as the call `include:` compiles to, with overwrite_default_target:
# a plain `include:` restores the including file's default target afterwards (none here), which
# would drop workflow/Snakefile's `rule all` as the default ("Nothing to be done").
workflow.include("workflow/Snakefile", overwrite_default_target=True)
