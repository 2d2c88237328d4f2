# Validation of config and sample sheet, input functions, constraints and the final targets
# (get_final_output). No rules here.
import re
import sys
from pathlib import Path
from types import SimpleNamespace

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger

# Folders of the tmeflow clone, from this file's own location (workflow/rules/), not from
# workflow.basedir: that is the folder of the FIRST Snakefile, which is the repository root,
# workflow/ (`snakemake -s workflow/Snakefile`) or another workflow's folder (tmeflow imported
# as a module), so paths built on it break in all but one of these.
RULES_DIR = Path(workflow.current_basedir.get_path_or_uri(secret_free=True))
if not RULES_DIR.is_dir():
    raise WorkflowError(
        f"tmeflow's rules are not in a local folder ({RULES_DIR}): its Python package "
        "(workflow/scripts/tmeflow) is imported at parse time, so a module import needs a local "
        "clone (module ...: snakefile: '<clone>/workflow/Snakefile'), not a remote snakefile."
    )
WORKFLOW_DIR = RULES_DIR.parent  # workflow/
REPO_DIR = WORKFLOW_DIR.parent  # the clone: config/ (shipped panels, gene sets)

sys.path.insert(0, str(WORKFLOW_DIR / "scripts"))

from tmeflow import core as tmcore  # noqa: E402
from tmeflow import export as tmexport  # noqa: E402
from tmeflow import inputs as tminputs  # noqa: E402
from tmeflow import stats as tmstats  # noqa: E402
from tmeflow.simulate import demo_layout, demo_outputs  # noqa: E402

SCHEMAS = WORKFLOW_DIR / "schemas"
DEMO_DIR = "resources/demo"


def shipped(path):
    """A config path of a reference file, as Snakemake should see it.

    Paths in the config are relative to the working directory. One that is absolute or exists
    there is kept as is (a run from the repository root: unchanged). One that does not, but
    names a file shipped with tmeflow (config/markers/..., config/genesets/...: the schema's
    defaults), resolves to that file in the clone: relative to the working directory when it
    lies below it, else absolute (tmeflow imported as a module from another folder).
    """
    p = Path(path)
    candidate = REPO_DIR / p
    if p.is_absolute() or p.exists() or not candidate.is_file():
        return str(path)  # a missing file is named by Snakemake's missing-input error
    try:
        return str(candidate.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(candidate.resolve())


tmcore.validate_config(config, SCHEMAS / "config.schema.yaml")
# The comparisons: the primary `contrast` (results at their usual paths) and the further
# `contrasts` (results/contrasts/<test>_vs_<reference>/, workflow/rules/contrasts.smk). Every
# arm goes through QC, integration and annotation together.
CONTRASTS = tmcore.study_contrasts(config)
ARMS = tmcore.study_arms(CONTRASTS)
EXTRA_CONTRASTS = {c.name: c for c in CONTRASTS[1:]}
# Marker panels and gene sets: the shipped ones are found from any working directory.
config["annotation"]["panel"] = shipped(config["annotation"]["panel"])
config["annotation"]["extra_panels"] = [
    shipped(p) for p in config["annotation"]["extra_panels"]
]
config["gsea"]["gene_sets"] = [shipped(p) for p in config["gsea"]["gene_sets"]]
config["communication"]["orthologs"] = shipped(config["communication"]["orthologs"])
# The demo draws its gene names from the shipped mouse hallmark sets.
DEMO_GENE_POOL = shipped("config/genesets/mh.all.v2023.1.Mm.symbols.gmt")

DEMO_OUTPUTS = [
    f"{DEMO_DIR}/{p}"
    for p in demo_outputs(
        n_replicates=config["demo"]["n_replicates"],
        conditions=ARMS,
    )
]

SAMPLES = tminputs.validate_sample_sheet(
    tminputs.read_sample_sheet(config["samples"]),
    SCHEMAS / "samples.schema.yaml",
    contrast=config["contrast"],
    covariates=config["de"]["covariates"],
    sheet_path=config["samples"],
    producible=DEMO_OUTPUTS,
    arms=ARMS,
)
for _warning in tminputs.design_warnings(
    SAMPLES, config["contrast"], config["contrasts"]
):
    logger.warning(f"WARNING ({config['samples']}): {_warning}")
SAMPLE_IDS = list(SAMPLES["sample"])
EXTRA_COLUMNS = tminputs.metadata_columns(SAMPLES)
GENES = list(config["genes_of_interest"])
UMAP_KEYS = ["cell_type", "cell_subtype", "condition", "sample", "species"]
EXPORT_SPECIES = tmexport.export_species(config["species"])
_PANEL = tmcore.load_panels(
    [config["annotation"]["panel"], *config["annotation"]["extra_panels"]]
)
# the sensitivity's retraining settings (one sensitivity_retrain job each)
_retrain = config["sensitivity"]["retrain"]
RETRAIN_VARIANTS = (
    tmstats.retrain_variants(
        seeds=_retrain["seeds"],
        n_latent=_retrain["n_latent"],
        n_top_genes=_retrain["n_top_genes"],
        pca=_retrain["pca"],
        configured={
            "n_latent": config["scvi"]["n_latent"],
            "n_top_genes": config["hvg"]["n_top_genes"],
        },
    )
    if _retrain["enabled"]
    else []
)
_missing = [
    t for t in config["sensitivity"]["marker_out"] if t not in _PANEL["cell_types"]
]
if _missing:
    raise tmcore.ConfigError(
        f"sensitivity.marker_out: {_missing} are not cell types of the annotation panel "
        f"({', '.join(sorted(_PANEL['cell_types']))}); list the panel's labels whose markers "
        "to leave out one at a time, or [] for none"
    )
# a panel that does not fit the species (human-only run, default mouse panel): say so
for _warning in tmcore.species_warnings(_PANEL, config["species"]):
    logger.warning(f"WARNING: {_warning}")
if config["export"]["enabled"]:
    _labels = tmexport.panel_labels(_PANEL)
    try:
        _warnings = tmexport.check_cell_ontology(
            config["export"]["cell_ontology"],
            _labels,
            defaults=tmcore.schema_default(
                SCHEMAS / "config.schema.yaml", "export", "cell_ontology"
            ),
        )
    except ValueError as _err:
        raise tmcore.ConfigError(str(_err)) from None
    for _warning in _warnings:
        logger.warning(f"WARNING: {_warning}")


wildcard_constraints:
    sample="|".join(SAMPLE_IDS),
    gene="|".join(GENES) if GENES else "NONE",
    contrast="|".join(map(re.escape, EXTRA_CONTRASTS)) if EXTRA_CONTRASTS else "NONE",


def _sheet_value(sample, column):
    """A sample-sheet cell, "" when the column is absent (optional columns)."""
    return str(SAMPLES.loc[sample].get(column, "") or "").strip()


def download_paths(sample):
    """Where the downloads of a sample whose sheet path is a URL are kept (the matrix first)."""
    files = tminputs.url_downloads(SAMPLES.loc[sample])
    return [f"resources/download/{sample}/{name}" for name in files]


def _download(wildcards):
    """(URL, sha256) of one download of a sample (``{filename}`` of rule download_sample)."""
    return tminputs.url_downloads(SAMPLES.loc[wildcards.sample])[wildcards.filename]


tminputs.check_url_rows(SAMPLES)


def ingest_input(wildcards):
    """The file(s) a sample's ingest job depends on.

    A URL: the download (the download_sample job); a 10x/GEO mtx input: its three files; the
    demo: the files the demo rule writes; otherwise the file itself.
    """
    from tmeflow.inputs import input_files

    path = SAMPLES.loc[wildcards.sample, "path"]
    if tminputs.is_url(path):
        return download_paths(wildcards.sample)
    prefix = str(Path(path)) + "/"
    inside = [p for p in DEMO_OUTPUTS if p.startswith(prefix)]
    return inside or input_files(path)


def download_source(wildcards):
    """The URL of one download of a sample, through Snakemake's HTTP storage plugin."""
    return storage.http(_download(wildcards)[0])


def sample_conditions():
    """{sample: condition} for every sample of the sheet."""
    column = config["contrast"]["column"]
    return {s: str(SAMPLES.loc[s, column]) for s in SAMPLE_IDS}


def provenance_matrices(wildcards):
    """Every sample's input matrix file(s), as each ingest job reads them."""
    files = []
    for sample in SAMPLE_IDS:
        files.extend(ingest_input(SimpleNamespace(sample=sample)))
    return sorted(set(files))


def sample_meta(wildcards):
    row = SAMPLES.loc[wildcards.sample]
    return {c: row[c] for c in EXTRA_COLUMNS if c != "condition"}


def sample_format(wildcards):
    fmt = SAMPLES.loc[wildcards.sample].get("format", "")
    return fmt or None


# the options of each confirmatory test in the sensitivity table (primary contrast)
CONFIRM_OPTIONS = {
    "condition_key": config["contrast"]["column"],
    "reference": config["contrast"]["reference"],
    "test": config["contrast"]["test"],
    "min_cells": config["de"]["min_cells"],
    "min_replicates": config["de"]["min_replicates"],
    "covariates": config["de"]["covariates"],
    "alpha": config["hypotheses_alpha"],
    "de_method": config["hypotheses_de_method"],
    "min_share": config["sources"]["min_share"],
    "immune_types": config["composition"]["immune_types"],
}


def contrast_arm(role):
    """A params function: the reference or test arm of the job's {contrast}."""

    def _arm(wildcards):
        return getattr(EXTRA_CONTRASTS[wildcards.contrast], role)

    return _arm


def contrast_arms(wildcards):
    """[reference, test] of the job's {contrast} (the figures' order)."""
    return list(EXTRA_CONTRASTS[wildcards.contrast].arms)


def contrast_confirm_options(wildcards):
    """The confirmatory options of the primary contrast with the job's arms."""
    c = EXTRA_CONTRASTS[wildcards.contrast]
    return {**CONFIRM_OPTIONS, "reference": c.reference, "test": c.test}


def mem_mb_for(base_mb, per_input_mb=10):
    """Memory in MB sized from the job's input size: base + per_input_mb per MB of input."""

    def _mem(wildcards, input, attempt):
        size_mb = sum(Path(f).stat().st_size for f in input if Path(f).exists()) / 1e6
        return int((base_mb + per_input_mb * size_mb) * attempt)

    return _mem


def runtime_for(base_min, per_gb_min):
    """Wall-time limit in minutes sized from the job's input size: base + per_gb_min per GB
    (scaled by the attempt). Calibrated on 2 CPU cores (bench/scaling.tsv): scVI took about
    0.3 min per epoch per GB of merged input (94k cells, 1.5 GB: 27 s per epoch)."""

    def _runtime(wildcards, input, attempt):
        size_gb = sum(Path(f).stat().st_size for f in input if Path(f).exists()) / 1e9
        return int((base_min + per_gb_min * size_gb) * attempt)

    return _runtime


def figure(stem, caption, category, subcategory=None):
    """A figure's outputs: the PNG registered in the Snakemake report with its caption
    (workflow/report/<caption>.rst), and the PDF as a plain output."""
    png = report(
        f"{stem}.png",
        caption=f"../report/{caption}.rst",
        category=category,
        subcategory=subcategory,
    )
    return [png, f"{stem}.pdf"]


def get_final_output(include_provenance=True):
    """Everything the workflow builds (the inputs of `rule all`), stage by stage.

    The provenance record runs after every other output: its rule takes
    get_final_output(include_provenance=False) as input.
    """
    final_output = []
    # QC: the summary of every barcode, per-sample QC and contamination figures
    final_output.append("results/qc/summary.tsv")
    final_output.extend(
        expand("results/qc/plots/{sample}.{ext}", sample=SAMPLE_IDS, ext=["pdf", "png"])
    )
    final_output.extend(
        expand("results/figures/qc_contamination.{ext}", ext=["pdf", "png"])
    )
    # cross-species doublets per sample (own- vs other-species UMIs, xenografts)
    final_output.extend(
        expand(
            "results/qc/plots/{sample}.crossspecies.{ext}",
            sample=SAMPLE_IDS,
            ext=["pdf", "png"],
        )
    )
    # every removed cell by the label of its nearest kept cells, sample and arm
    final_output.extend(
        ["results/qc/removed_by_label.tsv", "results/qc/removed_flags.tsv"]
    )
    final_output.extend(
        expand("results/figures/qc_removed_by_label.{ext}", ext=["pdf", "png"])
    )
    # integration quality (scib-metrics) of scVI vs unintegrated PCA
    final_output.extend(
        [
            "results/integrate/hvg.tsv",
            "results/integrate/metrics.tsv",
            "results/integrate/condition_signal.tsv",
        ]
    )
    # Leiden resolution sweep
    final_output.extend(
        ["results/cluster/resolution_sweep.tsv", "results/figures/resolution_sweep.pdf"]
    )
    # marker-based annotation
    final_output.extend(
        [
            "results/annotate/annotated.h5ad",
            "results/annotate/cluster_scores.tsv",
            "results/annotate/doublet_scores.tsv",
            "results/figures/annotation_scores.pdf",
        ]
    )
    # marker genes of each cluster and cell type (within species), and their dot plot
    final_output.extend(
        [
            "results/markers/clusters.tsv",
            "results/markers/cell_types.tsv",
            "results/markers/notes.tsv",
        ]
    )
    final_output.extend(
        expand("results/figures/cluster_markers.{ext}", ext=["pdf", "png"])
    )
    # condition statistics: pseudobulk DE, genes of interest, composition, expression sources
    final_output.extend(
        [
            "results/de/genes_of_interest.tsv",
            "results/de/pseudobulk_values.tsv",
            "results/de/summary.tsv",
            "results/de/pseudobulk_subtypes",
            "results/composition/proportions.tsv",
            "results/composition/test.tsv",
            "results/sources/primary_sources.tsv",
            "results/figures/primary_sources.pdf",
        ]
    )
    final_output.extend(expand("results/sources/{gene}.tsv", gene=GENES))
    # the same on the ambient-corrected counts, beside the uncorrected results
    if config["sources"]["ambient_correction"]:
        final_output.append("results/sources/ambient_corrected/primary_sources.tsv")
    if config["de"]["ambient_corrected"]:
        final_output.extend(
            [
                "results/de/ambient_corrected/genes_of_interest.tsv",
                "results/de/ambient_corrected/summary.tsv",
                "results/de/ambient_corrected/pseudobulk_subtypes",
            ]
        )
    # the pre-specified hypotheses (one Holm-adjusted family), their figure and sensitivity
    final_output.extend(
        [
            "results/confirmatory.tsv",
            "results/composition/denominators.tsv",
            "results/figures/confirmatory.pdf",
            "results/sensitivity.tsv",
            "results/figures/sensitivity.pdf",
            "results/figures/specification_curve.pdf",
        ]
    )
    # ligand-receptor communication: per-animal scores, arms compared, mapping, figures
    if config["communication"]["enabled"] in (True, "auto"):
        final_output.extend(
            [
                "results/communication/scores.tsv",
                "results/communication/comparison.tsv",
                "results/communication/mapping.tsv",
            ]
        )
        final_output.extend(
            expand(
                "results/figures/communication_{name}.{ext}",
                name=["dotplot", "summary", "hypotheses"],
                ext=["pdf", "png"],
            )
        )
    # gene-set enrichment
    final_output.extend(
        [
            "results/gsea/pseudobulk",
            "results/gsea/summary.tsv",
            "results/figures/gsea_dotplot.pdf",
        ]
    )
    # figures (PDF + PNG)
    fmt = ["pdf", "png"]
    final_output.extend(
        expand("results/figures/umap_{key}.{ext}", key=UMAP_KEYS, ext=fmt)
    )
    final_output.extend(
        expand(
            "results/figures/{name}.{ext}",
            name=["marker_dotplot", "composition"],
            ext=fmt,
        )
    )
    final_output.extend(expand("results/figures/goi_{gene}.{ext}", gene=GENES, ext=fmt))
    final_output.extend(
        expand("results/figures/sources_{gene}.{ext}", gene=GENES, ext=fmt)
    )
    final_output.append("results/figures/volcano")
    # CELLxGENE-schema export, one file per species
    if config["export"]["enabled"]:
        final_output.extend(
            expand("results/export/{species}.h5ad", species=EXPORT_SPECIES)
        )
        # and for R: SingleCellExperiment / Seurat (workflow/scripts/R/read_tmeflow.R)
        final_output.extend(
            expand("results/export/r/{species}", species=EXPORT_SPECIES)
        )
    # the further contrasts (config key `contrasts`), each in results/contrasts/<name>/
    for name in EXTRA_CONTRASTS:
        final_output.extend(contrast_outputs(name))
    if include_provenance:
        final_output.append("results/provenance.json")
    return final_output


def contrast_outputs(name):
    """What contrasts.smk builds for one further contrast: the primary contrast's statistics,
    confirmatory family, sensitivity, GSEA, communication and figures, in its own folder.
    """
    d = f"results/contrasts/{name}"
    fmt = ["pdf", "png"]
    out = [
        f"{d}/confirmatory.tsv",
        f"{d}/sensitivity.tsv",
        f"{d}/de/genes_of_interest.tsv",
        f"{d}/de/pseudobulk_values.tsv",
        f"{d}/de/summary.tsv",
        f"{d}/de/pseudobulk_subtypes",
        f"{d}/composition/proportions.tsv",
        f"{d}/composition/test.tsv",
        f"{d}/composition/denominators.tsv",
        f"{d}/gsea/pseudobulk",
        f"{d}/gsea/summary.tsv",
        f"{d}/figures/volcano",
    ]
    names = ["confirmatory", "sensitivity", "specification_curve", "gsea_dotplot"]
    names += [
        "composition",
        *(f"goi_{g}" for g in GENES),
        *(f"sources_{g}" for g in GENES),
    ]
    if config["communication"]["enabled"] in (True, "auto"):
        out += [
            f"{d}/communication/{t}.tsv" for t in ("scores", "comparison", "mapping")
        ]
        names += [f"communication_{n}" for n in ("dotplot", "summary", "hypotheses")]
    if config["de"]["ambient_corrected"]:
        out += [f"{d}/de/ambient_corrected/summary.tsv"]
        out += [f"{d}/de/ambient_corrected/genes_of_interest.tsv"]
    out += [f"{d}/figures/{n}.{ext}" for n in names for ext in fmt]
    return out
