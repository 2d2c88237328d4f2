"""Export of the annotated object as one CELLxGENE-schema h5ad file per species.

CELLxGENE holds one organism per dataset (``uns["organism_ontology_term_id"]`` since schema
6.0), so a xenograft is written as two files: the mouse stroma and the human tumour, each with
only its species' cells and features. Layout (schema 7.x, checked with cellxgene-schema 7.1):

- ``raw.X``: raw UMI counts (integer values, float32 CSR); ``X``: log1p(CP10k) (float32 CSR).
- ``var`` index: Ensembl gene ids without version (from ``var["gene_ids"]``) where the input has
  them, else the symbols (then ``var["feature_name"]`` repeats them and the file is not
  CELLxGENE-valid, which ``uns["tmeflow_export"]["var_index"]`` records);
  ``var["feature_is_filtered"]`` (False: every feature of ``raw.X`` is normalised in ``X``);
  ``var["gene_symbol"]``: the workflow's symbol. ``raw.var`` has the index only.
- ``obs``: the submitter fields (``*_ontology_term_id``, ``tissue_type``, ``donor_id`` = sample,
  ``suspension_type``, ``is_primary_data`` False: a reanalysis); the workflow's ``cell_type``
  and ``cell_subtype`` become ``author_cell_type`` and ``author_cell_subtype`` (CELLxGENE
  writes ``cell_type`` itself, from ``cell_type_ontology_term_id``).
- ``obsm``: the ``X_`` embeddings (``X_scVI``, ``X_umap``); ``uns``: ``title``,
  ``organism_ontology_term_id``, ``default_embedding`` (``X_umap``),
  ``X_approximate_distribution`` (``normal``), ``batch_condition`` (``["sample"]``).

Fields the CELLxGENE portal adds (``schema_version``, ``schema_reference``, ``citation``, the
label columns ``cell_type``, ``assay``, ``tissue``..., ``observation_joinid`` and
``var["feature_name"]``...) are reserved and never written here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tmeflow.core._panel import parent_of

if TYPE_CHECKING:  # anndata at run time only where an object is built: the workflow's parse
    from anndata import AnnData  # step imports this module for export_species (about 0.5 s)

logger = logging.getLogger(__name__)

ORGANISM: dict[str, str] = {"human": "NCBITaxon:9606", "mouse": "NCBITaxon:10090"}
"""NCBI Taxonomy term of each species."""
ENSEMBL_PATTERN: dict[str, str] = {"human": r"ENSG\d{11}", "mouse": r"ENSMUSG\d{11}"}
"""Ensembl gene ids of each species (found anywhere in ``gene_ids``: genome prefixes and
version suffixes are dropped)."""
CELL_ONTOLOGY_PATTERN = r"^CL:[0-9]{7}$"
UNKNOWN = "unknown"
UNASSIGNED = "unassigned"
RENAMED_OBS: dict[str, str] = {
    "cell_type": "author_cell_type",
    "cell_subtype": "author_cell_subtype",
}
"""Workflow obs columns renamed on export (CELLxGENE reserves ``cell_type``)."""
RESERVED_OBS: tuple[str, ...] = (
    "assay", "cell_type", "development_stage", "disease", "self_reported_ethnicity", "sex",
    "tissue", "observation_joinid", "experimental_condition", "perturbation_types",
    "organism", "organism_ontology_term_id", "ethnicity", "ethnicity_ontology_term_id",
)  # fmt: skip
"""obs columns CELLxGENE writes itself or has deprecated: never exported."""
RESERVED_VAR: tuple[str, ...] = (
    "feature_name", "feature_reference", "feature_biotype", "feature_length", "feature_type",
)  # fmt: skip
SPECIES_FIELDS: tuple[str, ...] = (
    "tissue_type",
    "tissue_ontology_term_id",
    "development_stage_ontology_term_id",
    "sex_ontology_term_id",
    "self_reported_ethnicity_ontology_term_id",
)
"""Per-species config keys (``export.<species>.<key>``), copied to every cell of the file."""
REQUIRED_OBS: tuple[str, ...] = (
    "assay_ontology_term_id",
    "cell_type_ontology_term_id",
    "development_stage_ontology_term_id",
    "disease_ontology_term_id",
    "donor_id",
    "is_primary_data",
    "self_reported_ethnicity_ontology_term_id",
    "sex_ontology_term_id",
    "suspension_type",
    "tissue_type",
    "tissue_ontology_term_id",
)
"""obs columns every CELLxGENE file carries (schema 7.x)."""


def panel_labels(panel: Mapping[str, Any]) -> list[str]:
    """The cell-type labels a marker panel can give (entries without a ``parent``)."""
    return sorted(set(parent_of(dict(panel)).values()))


def check_cell_ontology(
    mapping: Mapping[str, str],
    labels: Iterable[str],
    defaults: Mapping[str, str] | None = None,
) -> list[str]:
    """Check the ``export.cell_ontology`` mapping against the marker panel's labels.

    Parameters
    ----------
    mapping
        ``{panel label: CL term id or "unknown"}`` (config ``export.cell_ontology``).
    labels
        The cell-type labels the annotation can give (the panels' entries without a
        ``parent``).

    Returns
    -------
    list of str
        Warnings: labels without a term (their cells get ``unknown``).

    Raises
    ------
    ValueError
        A key that is no panel label (a typo would otherwise leave its cells ``unknown``) or
        a value that is neither a CL term id nor ``unknown``.
    defaults
        The shipped mapping (the schema's default). A key of it with its default value that
        the panel lacks is no typo: the defaults name the labels of every shipped panel (a
        human-only run's panel has no ``epithelial``, Snakemake merges the user's config into
        the defaults); such keys are ignored.
    """
    labels = list(labels)
    shipped = {k for k, v in (defaults or {}).items() if mapping.get(k) == v}
    extra = sorted(set(mapping) - set(labels) - shipped)
    if extra:
        msg = (
            f"config: key 'export.cell_ontology': {extra} are not cell-type labels of the "
            f"marker panel(s) (labels: {sorted(labels)}); fix the spelling or remove them."
        )
        raise ValueError(msg)
    bad = {
        k: v for k, v in mapping.items() if v != UNKNOWN and not re.match(CELL_ONTOLOGY_PATTERN, v)
    }
    if bad:
        msg = f"config: key 'export.cell_ontology': {bad} are neither CL:nnnnnnn ids nor 'unknown'."
        raise ValueError(msg)
    missing = [label for label in labels if label not in mapping]
    return [
        f"config: key 'export.cell_ontology' has no term for {missing}; "
        "their cells are exported as cell_type_ontology_term_id 'unknown'."
    ] * bool(missing)


def feature_ids(var: pd.DataFrame, species: str) -> pd.Series | None:
    """Ensembl gene ids (no prefix, no version) of ``var``'s features of ``species``.

    Returns
    -------
    pandas.Series or None
        Per feature the id, ``""`` where ``gene_ids`` holds none of that species (a transgene,
        another genome); ``None`` when ``var`` has no ``gene_ids`` column or no id at all.
    """
    if "gene_ids" not in var.columns:
        return None
    pattern = re.compile(ENSEMBL_PATTERN[species])
    found = [pattern.search(str(g)) for g in var["gene_ids"]]
    ids = pd.Series([m.group(0) if m else "" for m in found], index=var.index)
    return ids if (ids != "").any() else None


def _species_features(adata: AnnData, species: str) -> tuple[np.ndarray, pd.Index, str]:
    """Column positions, exported var index and its kind (``ensembl``/``symbol``)."""
    if "species" in adata.var.columns:
        ours = adata.var["species"].astype(str).to_numpy() == species
    else:
        ours = np.ones(adata.n_vars, dtype=bool)
    ids = feature_ids(adata.var, species)
    if ids is None:
        return np.flatnonzero(ours), adata.var_names[ours], "symbol"
    has_id = ours & (ids != "").to_numpy()
    # of features sharing an id (a symbol repeated in one genome) the first is kept
    keep = has_id & ~ids.where(has_id, "").duplicated().to_numpy()
    dropped = int(ours.sum() - keep.sum())
    if dropped:
        logger.warning(
            "%s: %d features without a unique %s Ensembl id are left out", species, dropped, species
        )
    return np.flatnonzero(keep), pd.Index(ids.to_numpy()[keep]), "ensembl"


def _obs_fields(obs: pd.DataFrame, species: str, settings: Mapping[str, Any]) -> pd.DataFrame:
    """The exported obs: the workflow's columns (renamed) and the CELLxGENE fields."""
    keep = [c for c in obs.columns if c not in RESERVED_OBS or c in RENAMED_OBS]
    out = obs[keep].rename(columns=RENAMED_OBS).copy()
    for column in out.columns:  # the other species' labels (CELLxGENE warns of empty ones)
        if isinstance(out[column].dtype, pd.CategoricalDtype):
            out[column] = out[column].cat.remove_unused_categories()
    mapping = dict(settings.get("cell_ontology", {}))
    labels = obs["cell_type"].astype(str) if "cell_type" in obs else pd.Series("", index=obs.index)
    terms = labels.map(lambda x: mapping.get(x, UNKNOWN) if x != UNASSIGNED else UNKNOWN)
    per_species = dict(settings.get(species, {}))
    if species != "human":
        per_species["self_reported_ethnicity_ontology_term_id"] = "na"
    values = {
        "assay_ontology_term_id": settings["assay_ontology_term_id"],
        "cell_type_ontology_term_id": terms,
        "disease_ontology_term_id": settings["disease_ontology_term_id"],
        "donor_id": obs["sample"].astype(str),
        "suspension_type": settings.get("suspension_type", "cell"),
        **{k: per_species.get(k, UNKNOWN) for k in SPECIES_FIELDS},
    }
    if values["tissue_type"] == UNKNOWN:
        values["tissue_type"] = "tissue"
    for column, value in values.items():
        series = value if isinstance(value, pd.Series) else pd.Series(value, index=obs.index)
        out[column] = pd.Categorical(series.astype(str))
    out["is_primary_data"] = False
    return out


def _takes_all(positions: np.ndarray, n: int) -> bool:
    """``positions`` is ``0 .. n-1`` in order (indexing with it would only copy)."""
    return positions.size == n and bool(np.all(positions == np.arange(n)))


def _subset32(x: Any, cells: np.ndarray, cols: np.ndarray) -> sp.csr_matrix:
    """``x[cells][:, cols]`` as a float32 CSR, holding as little as possible at once.

    Rows, then columns, are taken only where some are left out (each step frees the one
    before), and the float32 values are a new ``data`` array over the subset's own
    ``indices``/``indptr`` (int32 and float32 have the same size: a whole-matrix ``astype``
    would copy the indices too). For an object in memory; the workflow's export reads each
    species' rows from the file instead (``read`` of :func:`to_cellxgene`).
    """
    x = x.tocsr() if sp.issparse(x) else sp.csr_matrix(np.asarray(x))
    if not _takes_all(cells, x.shape[0]):
        x = x[cells]
    if not _takes_all(cols, x.shape[1]):
        x = x[:, cols]
    if x.dtype == np.float32:
        return x
    return sp.csr_matrix((x.data.astype(np.float32), x.indices, x.indptr), shape=x.shape)


def to_cellxgene(
    adata: AnnData,
    species: str,
    settings: Mapping[str, Any],
    *,
    read: Callable[[str, np.ndarray, np.ndarray], sp.csr_matrix] | None = None,
) -> AnnData:
    """One species' cells and features of the annotated object, in the CELLxGENE layout.

    Parameters
    ----------
    adata
        The annotated object: raw counts in ``layers["counts"]``, log-normalised ``X``,
        ``obs["species"]``, ``obs["sample"]``, ``obs["cell_type"]``, ``var["species"]``
        (xenograft), ``var["gene_ids"]`` where the input had them, ``obsm["X_umap"]``.
    species
        ``human`` or ``mouse``: the cells (``obs["species"]``) and features
        (``var["species"]``) written.
    settings
        The config section ``export`` (term ids, per-species fields, ``cell_ontology``).
    read
        ``read(key, cells, cols)``: the float32 CSR of rows ``cells`` and columns ``cols`` of
        ``X`` (key ``"X"``) or the counts (``"layers/counts"``), e.g.
        :func:`tmeflow.core.read_rows` on the annotated file, so that ``adata`` need not hold
        its matrices (at 100k cells, holding both whole took the job to 4.9x the counts);
        ``None``: ``adata``'s own.

    Returns
    -------
    AnnData
        The file's object (see the module docstring for its fields).
    """
    cells = np.flatnonzero(adata.obs["species"].astype(str).to_numpy() == species)
    cols, index, kind = _species_features(adata, species)
    if read is None:
        matrices = {"X": adata.X, "layers/counts": adata.layers["counts"]}

        def read(key: str, rows: np.ndarray, columns: np.ndarray) -> sp.csr_matrix:
            return _subset32(matrices[key], rows, columns)

    counts = read("layers/counts", cells, cols)
    empty = np.asarray(counts.sum(axis=1)).ravel() == 0
    if empty.any():  # CELLxGENE refuses cells without counts
        logger.warning(
            "%s: %d cells without counts on %s features left out",
            species,
            int(empty.sum()),
            species,
        )
        cells, counts = cells[~empty], counts[~empty]
    obs = _obs_fields(adata.obs.iloc[cells], species, settings)
    var = pd.DataFrame(
        {"feature_is_filtered": np.zeros(len(cols), dtype=bool),
         "gene_symbol": adata.var_names.to_numpy()[cols].astype(str)},
        index=index,
    )  # fmt: skip
    if kind == "symbol":
        var["feature_name"] = var["gene_symbol"]
    from anndata import AnnData

    out = AnnData(X=read("X", cells, cols), obs=obs, var=var)
    out.raw = AnnData(X=counts, obs=obs[[]], var=pd.DataFrame(index=index))
    for key, emb in adata.obsm.items():
        emb = np.asarray(emb)
        if key.startswith("X_") and emb.ndim == 2 and emb.shape[1] >= 2:
            out.obsm[key] = emb[cells]
    out.uns = _uns(adata, species, settings, kind, out)
    return out


def _uns(
    adata: AnnData, species: str, settings: Mapping[str, Any], kind: str, out: AnnData
) -> dict:
    title = settings.get("title") or "tmeflow"
    uns: dict[str, Any] = {
        "title": f"{title}: {species} cells",
        "organism_ontology_term_id": ORGANISM[species],
        "X_approximate_distribution": "normal",
        "batch_condition": ["sample"],
        "tmeflow_export": {"species": species, "var_index": kind},
    }
    if "X_umap" in out.obsm:
        uns["default_embedding"] = "X_umap"
    # uns["log1p"] is left out: its None (written by anndata >= 0.12 as encoding "null") makes
    # the file unreadable to anndata 0.11, which cellxgene-schema 7.1 uses
    if "normalisation" in adata.uns:
        uns["normalisation"] = dict(adata.uns["normalisation"])
    return uns


def export_species(mode: str) -> list[str]:
    """The species files written in species ``mode`` (``xenograft``: both)."""
    return ["human", "mouse"] if mode == "xenograft" else [mode]


def problems(adata: AnnData) -> list[str]:
    """Field-by-field check of an exported object against the CELLxGENE schema (7.x).

    Checks presence and dtypes of the required obs columns, the term formats that do not
    need the ontologies (organism, cell type, ``na`` rules), reserved columns, ``raw.X``
    integers, the ``var`` index, the embeddings and ``uns``. For the full check (ontology
    terms, gene ids of the GENCODE release) run ``cellxgene-schema validate`` on the file.

    Returns
    -------
    list of str
        One line per problem; empty when none is found.
    """
    out = []
    obs, uns = adata.obs, adata.uns
    for col in REQUIRED_OBS:
        if col not in obs:
            out.append(f"obs lacks {col!r}")
        elif col == "is_primary_data":
            out += [f"obs[{col!r}] is not bool"] * (obs[col].dtype != bool)
        elif obs[col].dtype.name != "category":
            out.append(f"obs[{col!r}] is not categorical")
    out += [f"obs has reserved column {c!r}" for c in RESERVED_OBS if c in obs]
    out += [f"var has reserved column {c!r}" for c in RESERVED_VAR if c in adata.var]
    organism = uns.get("organism_ontology_term_id")
    if organism not in ORGANISM.values():
        out.append(f"uns['organism_ontology_term_id'] is {organism!r}")
    for key in ("title", "default_embedding"):
        out += [f"uns lacks {key!r}"] * (key not in uns)
    if uns.get("default_embedding", "X_umap") not in adata.obsm:
        out.append("uns['default_embedding'] is not a key of obsm")
    if "cell_type_ontology_term_id" in obs:
        bad = {
            t for t in obs["cell_type_ontology_term_id"].astype(str).unique()
            if t != UNKNOWN and not re.match(CELL_ONTOLOGY_PATTERN, t)
        }  # fmt: skip
        out += [f"cell_type_ontology_term_id {sorted(bad)} invalid"] * bool(bad)
    out += _matrix_problems(adata, organism)
    return out


def _matrix_problems(adata: AnnData, organism: str | None) -> list[str]:
    out = []
    if adata.raw is None:
        return ["raw is missing"]
    data = adata.raw.X.data if sp.issparse(adata.raw.X) else np.asarray(adata.raw.X)
    if not np.array_equal(data, np.round(data)) or (data < 0).any():
        out.append("raw.X holds non-integer or negative values")
    if not adata.raw.var_names.equals(adata.var_names):
        out.append("raw.var index differs from var index")
    if not adata.var_names.is_unique:
        out.append("var index is not unique")
    species = {v: k for k, v in ORGANISM.items()}.get(organism or "")
    if species and adata.uns.get("tmeflow_export", {}).get("var_index") != "symbol":
        pattern = re.compile(f"^{ENSEMBL_PATTERN[species]}$")
        bad = [g for g in adata.var_names if not pattern.match(g)]
        out += [f"{len(bad)} var ids are not {species} Ensembl ids, e.g. {bad[:3]}"] * bool(bad)
    if "feature_is_filtered" not in adata.var or adata.var["feature_is_filtered"].dtype != bool:
        out.append("var['feature_is_filtered'] missing or not bool")
    return out
