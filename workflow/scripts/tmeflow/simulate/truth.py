"""The planted biology of the simulated xenograft: what the workflow is expected to recover.

Second condition versus the first (the reference); a third or later arm (a three-arm demo)
has the same effects as the second, so the treated arms do not differ from each other:

- composition: the TAM fraction doubles (0.15 -> 0.30) and the tumour fraction falls
  (0.45 -> 0.30);
- differential expression: ``Mmp11`` in CAFs, log2 fold change 2;
- pathway: the simulated members of ``HALLMARK_INTERFERON_ALPHA_RESPONSE`` in TAMs, log2 fold
  change 1.5;
- communication: ``Gas6`` rises 4x (log2 fold change 2) in its sources, the CAFs and the
  TAM_Mrc1 subset, so the mouse ligand -> human receptor ``Gas6 -> AXL`` rises from CAF and
  TAM_Mrc1 to the tumour (their Gas6 shares, hence the ``source`` answers, stay as they were);
  ``Dcn -> EGFR`` from CAF to the tumour (a consensus pair between two planted markers) does not
  change;
- nothing else differs between conditions; ``null_genes`` documents ~300 expressed mouse genes
  with no effect of any kind (no cell-type programme, no batch shift).

Gene symbols here and in ``planted.yaml`` are written without species prefixes (``Mmp11``), as
they are after the species stage; the 10x files carry prefixed names (``mm10_Mmp11``,
``GRCh38_AXL``). :func:`planted_effects` is what ``planted.yaml`` holds.
"""

from collections.abc import Sequence

from tmeflow.core._vocabulary import DEFAULT_VOCAB

CONDITIONS_DEFAULT: tuple[str, str] = ("control", "alectinib")

HUMAN_PREFIX = "GRCh38_"
MOUSE_PREFIX = "mm10_"
HUMAN_GENOME = "GRCh38"
MOUSE_GENOME = "mm10"
FEATURE_TYPE = "Gene Expression"

# --- genes -------------------------------------------------------------------------------------
HUMAN_TUMOR_MARKERS: dict[str, float] = {  # natural-log effect over base in the tumour
    "AXL": 4.0,
    "KRT8": 4.0,
    "KRT18": 4.0,
    "KRT19": 3.5,
    "EPCAM": 3.5,
    "CDH1": 3.0,
    "ALK": 2.5,
    "EML4": 2.5,
    "EGFR": 2.0,
    "MKI67": 2.0,
    "TOP2A": 2.0,
    "GAPDH": 3.5,
    "ACTB": 3.5,
}
HUMAN_MITO = (
    "MT-ND1",
    "MT-ND2",
    "MT-CO1",
    "MT-CO2",
    "MT-ATP8",
    "MT-ATP6",
    "MT-CO3",
    "MT-ND3",
    "MT-ND4L",
    "MT-ND4",
    "MT-ND5",
    "MT-ND6",
    "MT-CYB",
)
MOUSE_MITO = (
    "mt-Nd1",
    "mt-Nd2",
    "mt-Co1",
    "mt-Co2",
    "mt-Atp8",
    "mt-Atp6",
    "mt-Co3",
    "mt-Nd3",
    "mt-Nd4l",
    "mt-Nd4",
    "mt-Nd5",
    "mt-Nd6",
    "mt-Cytb",
)
#: Well-known mouse members of MSigDB HALLMARK_INTERFERON_ALPHA_RESPONSE (mouse ortholog set).
IFN_ALPHA_GENES = (
    "Isg15",
    "Ifit3",
    "Irf7",
    "Mx1",
    "Rsad2",
    "Ifi44",
    "Bst2",
    "Stat2",
    "Irf9",
    "Usp18",
    "Ifitm3",
    "Isg20",
    "Ly6e",
    "Parp9",
    "Cmpk2",
    "Ifi35",
    "Psmb8",
    "Psmb9",
    "Oas1a",
    "Rtp4",
)
PATHWAY_NAME = "HALLMARK_INTERFERON_ALPHA_RESPONSE"
#: T-cell markers: present in the reference, (almost) never expressed (nude mice have no T cells).
T_CELL_MARKERS = ("Cd3e", "Cd3d", "Cd3g", "Cd4", "Cd8a", "Cd8b1", "Trac", "Cd28")

CAF_SHARED = ("Col1a1", "Col1a2", "Dcn", "Pdgfra", "Pdgfrb")
TAM_SHARED = ("C1qa", "C1qb", "C1qc", "Adgre1", "Cd68", "Lyz2", "Csf1r", "Ptprc")

#: Mouse cell types: shared markers of the type (gene -> natural-log effect over base).
MOUSE_TYPE_MARKERS: dict[str, dict[str, float]] = {
    "CAF": dict.fromkeys(CAF_SHARED, 3.5),
    "TAM": dict.fromkeys(TAM_SHARED, 3.5),
    "monocyte": {"Ly6c2": 3.5, "Ccr2": 3.5, "Plac8": 3.5, "Ptprc": 3.5, "Lyz2": 2.0},
    "neutrophil": {"S100a8": 4.0, "S100a9": 4.0, "Retnlg": 3.5, "Csf3r": 3.5, "Ptprc": 3.0},
    "NK": {"Ncr1": 3.5, "Nkg7": 4.0, "Klrb1c": 3.5, "Gzma": 4.0, "Ptprc": 3.5},
    "B": {"Cd79a": 4.0, "Cd79b": 3.5, "Ms4a1": 3.5, "Cd19": 3.5, "Ptprc": 3.5},
    "endothelial": {"Pecam1": 3.5, "Cdh5": 3.5, "Kdr": 3.5, "Emcn": 3.5},
    "pericyte": {"Rgs5": 4.0, "Kcnj8": 3.5, "Abcc9": 3.5, "Pdgfrb": 3.5},
}
#: Subtype markers (on top of the type's profile).
SUBTYPE_MARKERS: dict[str, dict[str, float]] = {
    "myCAF": {"Acta2": 4.0, "Tagln": 4.0, "Myl9": 3.5},
    "iCAF": {"Ly6c1": 3.5, "Cxcl12": 3.5, "Pi16": 3.5, "Il6": 3.0},
    "TAM_Mrc1": {"Mrc1": 3.5, "Lyve1": 3.5, "F13a1": 3.5},
    "TAM_Spp1": {"Arg1": 3.5, "Spp1": 4.0},
}

#: Populations (cell_subtype) in a fixed order: (subtype, cell_type, species).
POPULATIONS: tuple[tuple[str, str, str], ...] = (
    ("tumor", "tumor", "human"),
    ("myCAF", "CAF", "mouse"),
    ("iCAF", "CAF", "mouse"),
    ("TAM_Mrc1", "TAM", "mouse"),
    ("TAM_Spp1", "TAM", "mouse"),
    ("monocyte", "monocyte", "mouse"),
    ("neutrophil", "neutrophil", "mouse"),
    ("NK", "NK", "mouse"),
    ("B", "B", "mouse"),
    ("endothelial", "endothelial", "mouse"),
    ("pericyte", "pericyte", "mouse"),
)
#: The simulated cell types: the types of :data:`POPULATIONS`, in the display order of the
#: label vocabulary (:data:`tmeflow.core._vocabulary.DEFAULT_VOCAB`), which fixes the order of
#: the simulator's draws.
CELL_TYPES: tuple[str, ...] = tuple(
    t for t in DEFAULT_VOCAB if t in {cell_type for _, cell_type, _ in POPULATIONS}
)
COMPOSITION_REFERENCE: dict[str, float] = {
    "tumor": 0.45,
    "CAF": 0.15,
    "TAM": 0.15,
    "monocyte": 0.06,
    "neutrophil": 0.06,
    "NK": 0.04,
    "B": 0.03,
    "endothelial": 0.04,
    "pericyte": 0.02,
}
COMPOSITION_TEST: dict[str, float] = {**COMPOSITION_REFERENCE, "tumor": 0.30, "TAM": 0.30}
SUBTYPE_SPLIT: dict[str, dict[str, float]] = {
    "CAF": {"myCAF": 0.6, "iCAF": 0.4},
    "TAM": {"TAM_Mrc1": 0.5, "TAM_Spp1": 0.5},
}
#: Median library size per cell type (UMIs).
LIBRARY_MEDIAN: dict[str, float] = {
    "tumor": 8000.0,
    "CAF": 5000.0,
    "TAM": 4000.0,
    "monocyte": 3000.0,
    "neutrophil": 1500.0,
    "NK": 2500.0,
    "B": 2500.0,
    "endothelial": 4000.0,
    "pericyte": 4000.0,
}
#: Fixed fractions of a population's non-mito counts for a few genes: gene -> {subtype: fraction}.
#: Populations not listed get the ``"*"`` value (mouse populations only).
FIXED_FRACTIONS: dict[str, dict[str, float]] = {
    "Gas6": {
        "myCAF": 4e-3,
        "iCAF": 4e-3,
        "TAM_Mrc1": 3e-3,
        "TAM_Spp1": 3e-4,
        "*": 1e-5,
    },
    "Mmp11": {"myCAF": 3e-4, "iCAF": 3e-4, "*": 2e-5},
    "Axl": {
        "myCAF": 1.2e-4,
        "iCAF": 1.2e-4,
        "TAM_Mrc1": 1.2e-4,
        "TAM_Spp1": 1.2e-4,
        "*": 1e-5,
    },
    **{gene: {"*": 1e-6} for gene in T_CELL_MARKERS},
}

DE_GENE = "Mmp11"
DE_CELL_TYPE = "CAF"
DE_LOG2FC = 2.0
PATHWAY_CELL_TYPE = "TAM"
PATHWAY_LOG2FC = 1.5
GAS6_SOURCES = ("CAF", "TAM_Mrc1")
#: The planted rise in communication: the ligand's log2 fold change in its senders (subtypes).
LR_RISING = {
    "ligand": "Gas6",
    "receptor": "AXL",
    "senders": ["CAF", "TAM_Mrc1"],
    "receiver": "tumor",
    "log2fc": 2.0,
}
LR_RISING_SUBTYPES = ("myCAF", "iCAF", "TAM_Mrc1")
#: A cross-species pair of the resource between planted markers, with no change.
LR_FLAT = {"ligand": "Dcn", "receptor": "EGFR", "senders": ["CAF"], "receiver": "tumor"}

TRUTH_COLUMNS = (
    "sample",
    "barcode",
    "condition",
    "species",
    "cell_type",
    "cell_subtype",
    "is_doublet",
    "is_low_quality",
)


def planted_effects(
    *,
    seed: int,
    conditions: Sequence[str],
    sizes: dict[str, int],
    null_genes: Sequence[str],
    rates: dict[str, float],
) -> dict:
    """The documented effects and parameters of a simulated experiment (``planted.yaml``).

    Parameters
    ----------
    seed
        Seed of the simulation.
    conditions
        ``(reference, test)`` condition names (more treated arms may follow, each with the
        test's effects).
    sizes
        ``n_replicates``, ``cells_per_sample``, ``n_genes_mouse``, ``n_genes_human``.
    null_genes
        Expressed mouse genes without any effect (drawn by the model).
    rates
        Artefact rates: ``doublet``, ``mixed_doublet_share``, ``low_quality``,
        ``ambient_fraction``.

    Returns
    -------
    dict
        Plain (YAML-safe) mapping, keys in a fixed order.
    """
    reference, *treated = conditions
    return {
        "seed": seed,
        "conditions": [reference, *treated],
        "sizes": dict(sizes),
        "de": [{"gene": DE_GENE, "cell_type": DE_CELL_TYPE, "log2fc": DE_LOG2FC}],
        "pathway": {
            "name": PATHWAY_NAME,
            "cell_type": PATHWAY_CELL_TYPE,
            "log2fc": PATHWAY_LOG2FC,
            "genes": list(IFN_ALPHA_GENES),
        },
        "composition": {
            reference: {t: float(v) for t, v in COMPOSITION_REFERENCE.items()},
            **{arm: {t: float(v) for t, v in COMPOSITION_TEST.items()} for arm in treated},
        },
        "subtype_split": {t: dict(v) for t, v in SUBTYPE_SPLIT.items()},
        "gas6_sources": list(GAS6_SOURCES),
        "communication": {
            "rising": {k: (list(v) if isinstance(v, list) else v) for k, v in LR_RISING.items()},
            "flat": {k: (list(v) if isinstance(v, list) else v) for k, v in LR_FLAT.items()},
        },
        "null_genes": list(null_genes),
        "absent_markers": {"T": list(T_CELL_MARKERS)},
        "markers": {
            "tumor": list(HUMAN_TUMOR_MARKERS)[:6],
            **{t: list(m) for t, m in MOUSE_TYPE_MARKERS.items()},
            **{s: list(m) for s, m in SUBTYPE_MARKERS.items()},
        },
        "rates": dict(rates),
    }
