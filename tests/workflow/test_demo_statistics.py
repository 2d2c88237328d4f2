"""End to end: the condition statistics of the small demo answer its planted questions.

Known answers (resources/demo/planted.yaml): Mmp11 up 4x in CAFs; Gas6 made by CAFs and the
TAM_Mrc1 subset, 4x there under treatment (Gas6 -> AXL rises to the tumour; Dcn -> EGFR
does not); TAMs double under treatment; HALLMARK_INTERFERON_ALPHA_RESPONSE up in TAMs;
~300 documented null genes with no effect anywhere.
"""

import pandas as pd
import pytest
import yaml

from .helpers import SMALL_DEMO

pytestmark = pytest.mark.workflow

ALPHA = 0.05
FAMILY_ALPHA = 0.04  # hypotheses_alpha's default


@pytest.fixture(scope="module")
def planted(demo_run) -> dict:
    return yaml.safe_load((demo_run / "resources/demo/planted.yaml").read_text())


@pytest.fixture(scope="module")
def de_tables(demo_run) -> dict[str, pd.DataFrame]:
    folder = demo_run / "results/de/pseudobulk"
    return {p.stem: pd.read_csv(p, sep="\t") for p in sorted(folder.glob("*.tsv"))}


def test_mmp11_up_in_caf_with_ci_covering_the_planted_effect(demo_run, planted):
    effect = next(e for e in planted["de"] if e["gene"] == "Mmp11")["log2fc"]
    goi = pd.read_csv(demo_run / "results/de/genes_of_interest.tsv", sep="\t")
    row = goi[
        (goi["gene"] == "Mmp11") & (goi["cell_type"] == "CAF") & (goi["level"] == "cell_type")
    ]
    row = row.iloc[0]
    assert row["method"] == "pydeseq2"
    assert row["padj"] < ALPHA
    assert abs(row["log2FoldChange"] - effect) <= 0.5, row["log2FoldChange"]
    assert row["ci_low"] <= effect <= row["ci_high"], (row["ci_low"], row["ci_high"])
    assert row["n_samples_reference"] == 3 and row["n_samples_test"] == 3
    assert row["frac_expressing_test"] > row["frac_expressing_reference"]
    assert row["mean_norm_test"] > row["mean_norm_reference"]


def test_goi_companion_table_has_one_value_per_animal(demo_run):
    values = pd.read_csv(demo_run / "results/de/pseudobulk_values.tsv", sep="\t")
    caf = values[(values["gene"] == "Mmp11") & (values["cell_type"] == "CAF")]
    assert len(caf) == 6 and caf["sample"].is_unique
    cpm = caf.groupby("condition")["cpm"].mean()
    assert cpm["alectinib"] > 2.5 * cpm["control"]
    subtypes = values[values["level"] == "cell_subtype"]
    assert {"myCAF", "iCAF", "TAM_Mrc1", "TAM_Spp1"} <= set(subtypes["cell_type"])


def test_null_genes_false_positive_proportion(de_tables, planted):
    """Over every (null gene, cell type) test, at most 5% reach padj < 0.05, and null genes
    make up at most 5% of all discoveries."""
    null = set(planted["null_genes"])
    tested = called = all_called = 0
    for table in de_tables.values():
        is_null = table["gene"].isin(null)
        sig = table["padj"] < ALPHA
        tested += int((is_null & table["padj"].notna()).sum())
        called += int((is_null & sig).sum())
        all_called += int(sig.sum())
    assert tested > 500, tested
    assert called / tested <= 0.05, (called, tested)
    assert called <= 0.05 * max(all_called, 1), (called, all_called)


def test_de_summary_lists_every_group_and_method(demo_run, de_tables):
    summary = pd.read_csv(demo_run / "results/de/summary.tsv", sep="\t")
    types = summary[summary["level"] == "cell_type"]
    assert set(types["cell_type"]) == set(de_tables)
    assert (types["method"] == "pydeseq2").all()
    assert not summary["exploratory"].any()
    subs = summary[summary["level"] == "cell_subtype"].set_index("cell_type")
    for label in ("myCAF", "iCAF", "TAM_Mrc1", "TAM_Spp1"):
        assert subs.loc[label, "method"] == "pydeseq2", subs
        assert (demo_run / f"results/de/pseudobulk_subtypes/{label}.tsv").stat().st_size > 0
    # the planted effect is in both CAF subtypes
    for label in ("myCAF", "iCAF"):
        t = pd.read_csv(demo_run / f"results/de/pseudobulk_subtypes/{label}.tsv", sep="\t")
        assert t.set_index("gene").loc["Mmp11", "log2FoldChange"] > 1.0


def test_gas6_primary_sources_are_caf_and_the_mrc1_tam_subset(demo_run, planted):
    """Pooled over all cells and in each arm: CAF is the top cell type; at subtype level the
    primary sources (>= 10% of Gas6 UMIs) are the CAF subtypes and TAM_Mrc1, never TAM_Spp1."""
    assert planted["gas6_sources"] == ["CAF", "TAM_Mrc1"]
    prim = pd.read_csv(demo_run / "results/sources/primary_sources.tsv", sep="\t")
    gas6 = prim[prim["gene"] == "Gas6"]
    for condition in ("all", "control", "alectinib"):
        types = gas6[(gas6["level"] == "cell_type") & (gas6["condition"] == condition)]
        assert types.sort_values("rank")["cell_type"].iloc[0] == "CAF", types
        assert set(types["cell_type"]) == {"CAF", "TAM"}, types
        subs = gas6[(gas6["level"] == "cell_subtype") & (gas6["condition"] == condition)]
        assert set(subs["cell_type"]) == {"myCAF", "iCAF", "TAM_Mrc1"}, subs
        assert (subs["share_min"] <= subs["share"]).all()
        assert (subs["share"] <= subs["share_max"]).all()
    sub_table = pd.read_csv(demo_run / "results/sources/Gas6.subtypes.tsv", sep="\t")
    tam = sub_table.groupby("cell_type")["share"].mean()
    assert tam["TAM_Mrc1"] > 4 * tam["TAM_Spp1"]
    per_animal = pd.read_csv(demo_run / "results/sources/Gas6.samples.tsv", sep="\t")
    assert per_animal[per_animal["level"] == "cell_type"]["sample"].nunique() == 6


def test_tam_increase_detected_by_composition_test(demo_run):
    test = pd.read_csv(demo_run / "results/composition/test.tsv", sep="\t").set_index("cell_type")
    tam = test.loc["TAM"]
    assert tam["method"] == "logit_lm"
    assert tam["effect"] > 0 and tam["ci_low"] > 0
    assert tam["padj"] < ALPHA
    assert tam["fraction_test"] > 1.5 * tam["fraction_reference"]
    sig = test["padj"] < ALPHA
    assert test.loc[sig, "note"].str.contains("closed proportions").all()


def test_planted_pathway_enriched_up_in_tams(demo_run, planted):
    name = planted["pathway"]["name"]
    assert planted["pathway"]["cell_type"] == "TAM" and planted["pathway"]["log2fc"] > 0
    tam = pd.read_csv(demo_run / "results/gsea/pseudobulk/TAM.tsv", sep="\t").set_index("Term")
    assert tam.loc[name, "NES"] > 0
    assert tam.loc[name, "FDR q-val"] < 0.05
    assert tam.loc[name, "de_method"] == "pydeseq2"
    # marker panels are tested as sets too
    assert tam["collection"].eq("marker_panel").any()
    summary = pd.read_csv(demo_run / "results/gsea/summary.tsv", sep="\t").set_index("cell_type")
    assert summary.loc["TAM", "n_fdr_below"] >= 1


def test_statistics_figures_written(demo_run, de_tables):
    for rel in (
        "results/figures/primary_sources.pdf",
        "results/figures/primary_sources.png",
        "results/figures/gsea_dotplot.pdf",
        "results/figures/gsea_dotplot.png",
        "results/figures/composition.pdf",
        "results/figures/goi_Mmp11.pdf",
    ):
        assert (demo_run / rel).stat().st_size > 0, rel
    volcano = {p.stem for p in (demo_run / "results/figures/volcano").glob("*.pdf")}
    assert volcano == set(de_tables)


def test_confirmatory_table_supports_every_planted_hypothesis(demo_run, planted):
    """The default family on the demo: planted answers supported (Holm p < alpha, sign
    stable leaving any one animal out), unplanted ones not (AXL in the tumour, Gas6 in
    TAM_Spp1); a planted null gene added to the family is not supported either."""
    table = pd.read_csv(demo_run / "results/confirmatory.tsv", sep="\t").set_index("hypothesis")
    verdict = {h.split(": ", 1)[1]: v for h, v in table["verdict"].items()}
    reference, test = planted["conditions"]
    assert planted["composition"][test]["TAM"] > planted["composition"][reference]["TAM"]
    assert set(planted["gas6_sources"]) == {"CAF", "TAM_Mrc1"}
    for label in (
        "Mmp11 up in CAF",
        "Gas6 source: CAF",
        "Gas6 source: myCAF",
        "Gas6 source: iCAF",
        "Gas6 source: TAM_Mrc1",
        "Gas6 main sources: CAF + TAM_Mrc1 (> 50% of stroma)",
        "TAM among stroma up",
    ):
        assert verdict[label] == "supported", (label, table.to_string())
    assert verdict["AXL changed in tumor"] == "not supported"
    assert verdict["Gas6 source: TAM_Spp1"] == "not supported"
    # a source is enriched: TAMs as a whole make Gas6 at ~0.85x the mouse cells' rate (the
    # CAFs' 4e-3 per UMI dominates; TAM_Mrc1 3e-3, TAM_Spp1 3e-4): abundant, not enriched
    assert verdict["Gas6 source: TAM"] != "supported"
    sup = table[table["verdict"] == "supported"]
    assert (sup["p_holm"] < FAMILY_ALPHA).all() and sup["loo_sign_stable"].all()
    # the configured level reaches the verdicts (not de.alpha)
    assert sup["reason"].str.contains(f"< {FAMILY_ALPHA:g} (family m = ", regex=False).all()
    mmp11 = table.loc["H1: Mmp11 up in CAF"]
    assert mmp11["ci_low"] > 0 and mmp11["n_animals_reference"] == 3
    values = pd.read_csv(demo_run / "results/confirmatory_values.tsv", sep="\t")
    assert values.groupby("hypothesis")["sample"].nunique().min() == 6
    assert (demo_run / "results/figures/confirmatory.png").stat().st_size > 0


def test_communication_finds_the_planted_rise_and_not_the_flat_pair(demo_run, planted):
    """results/communication/: the planted Gas6 -> AXL is among the top 5 pairs of CAF -> tumour
    and of TAM_Mrc1 -> tumour, up (p < alpha); Dcn -> EGFR (unchanged) is not; its
    interaction hypothesis is not supported; the mapping keeps most resource pairs."""
    from tmeflow.core import _h5ad as h5ad
    from tmeflow.stats import _confirmatory as confirmatory

    rising, flat = planted["communication"]["rising"], planted["communication"]["flat"]
    comp = pd.read_csv(demo_run / "results/communication/comparison.tsv", sep="\t")
    comp = comp.set_index(["sender", "receiver", "interaction"])
    up = f"{rising['ligand']}-{rising['receptor']}"
    for sender in rising["senders"]:
        row = comp.loc[(sender, rising["receiver"], up)]
        # 3 vs 3 animals: BH over ~2,700 pairs cannot reach alpha; the rank and p can
        assert row["rank"] <= 5 and row["effect"] > 0 and row["pvalue"] < ALPHA, row.to_string()
        assert not row["ligand_mostly_soup"]
    row = comp.loc[("CAF", flat["receiver"], f"{flat['ligand']}-{flat['receptor']}")]
    assert row["pvalue"] >= ALPHA and row["rank"] > 5, row.to_string()
    mapping = pd.read_csv(demo_run / "results/communication/mapping.tsv", sep="\t")
    mh = mapping[mapping["sender_species"] == "mouse"].iloc[0]
    assert 0.6 < mh["share_kept"] < 1 and mh["n_kept"] + mh["n_dropped"] == mh["n_resource"]
    table = pd.read_csv(demo_run / "results/confirmatory.tsv", sep="\t")
    inter = table[table["kind"] == "interaction"]
    assert len(inter) == 2 and (inter["verdict"] == "supported").all(), inter.to_string()
    adata = h5ad.read_h5ad(
        demo_run / "results/annotate/annotated.h5ad", skip=("X", "obsp"), layers=("counts",)
    )
    reference, test = planted["conditions"]
    hyp = confirmatory.parse_hypotheses(
        [{"interaction": "Dcn-EGFR", "sender": "CAF", "receiver": "tumor", "direction": "up"}]
    )
    null, _ = confirmatory.confirm(adata, hyp, reference=reference, test=test)
    assert null["verdict"].iat[0] == "not supported", null.to_string()
    for name in ("dotplot", "summary", "hypotheses"):
        assert (demo_run / f"results/figures/communication_{name}.png").stat().st_size > 0


def test_confirmatory_null_gene_not_supported(demo_run, planted):
    """A hypothesis on each of a few planted null genes, in the demo's CAFs, is not supported
    (one PyDESeq2 fit: no shrinkage, no leave-one-out refits, which cannot turn a Holm p above
    alpha into support)."""
    from tmeflow.core import _h5ad as h5ad
    from tmeflow.stats import _confirmatory as confirmatory

    adata = h5ad.read_h5ad(demo_run / "results/annotate/annotated.h5ad", skip=("X", "obsp"))
    nulls = [g for g in planted["null_genes"] if g in adata.var_names][:5]
    hyps = confirmatory.parse_hypotheses([{"gene": g, "cell_type": "CAF"} for g in nulls])
    reference, test = planted["conditions"]
    table, _ = confirmatory.confirm(
        adata, hyps, reference=reference, test=test, loo=False, shrink=False
    )
    assert len(table) == 5 and table["pvalue"].notna().all(), table.to_string()
    assert (table["p_holm"] >= ALPHA).all(), table.to_string()
    assert (table["verdict"] == "not supported").all()


def test_sensitivity_grid_keeps_the_planted_answers(demo_run):
    """results/sensitivity.tsv: the confirmatory family once per setting (one row per
    hypothesis x setting); the configured setting repeats the confirmatory verdicts and
    p-values; the demo's planted answers hold at every other sweep resolution and annotation
    threshold; what the annotated object cannot recompute says so."""
    table = pd.read_csv(
        demo_run / "results/sensitivity.tsv", sep="\t", keep_default_na=False, na_values=[""]
    )
    conf = pd.read_csv(demo_run / "results/confirmatory.tsv", sep="\t")
    cfg = yaml.safe_load((demo_run / "config/config.yaml").read_text())
    hyps = list(conf["hypothesis"])
    settings = table[["setting", "value"]].drop_duplicates()
    assert len(table) == len(settings) * len(hyps)
    for _, rows in table.groupby(["setting", "value"], sort=False):
        assert list(rows["hypothesis"]) == hyps
    configured = table[table["setting"] == "configured"].set_index("hypothesis")
    assert list(configured["verdict"]) == list(conf["verdict"])
    pd.testing.assert_series_equal(
        configured["pvalue"], conf.set_index("hypothesis")["pvalue"], rtol=1e-4
    )
    assert cfg["cluster"]["resolution_choice"] == "fixed"
    used = cfg["cluster"]["resolution"]
    resolutions = table.loc[table["setting"] == "resolution", "value"].astype(float)
    tried = SMALL_DEMO["sensitivity"]["resolutions"]  # the config's default: the whole sweep
    assert set(resolutions) == {r for r in tried if r != used} and len(resolutions.unique()) >= 1
    recomputed = table[table["setting"].isin(["resolution", "min_score", "min_margin"])]
    assert (
        recomputed[["setting", "value"]].drop_duplicates().shape[0] == len(resolutions.unique()) + 4
    )
    planted = [h for h, v in zip(conf["hypothesis"], conf["verdict"], strict=True)
               if v == "supported"]  # fmt: skip
    # 7 + Gas6-AXL from CAF and from TAM_Mrc1 (planted); Gas6 source: TAM is not enriched
    assert len(planted) == 9
    kept = recomputed[recomputed["hypothesis"].isin(planted)]
    assert (kept["verdict"] == "supported").all(), kept.to_string()
    assert (kept["p_holm"] < ALPHA).all()
    # doublets off and a looser species threshold: the cells QC removed as doublets or mixed
    # come back with the labels of their nearest kept cells (results/qc/removed_cells.h5ad)
    for setting, value in (("doublets", "off"), ("min_fraction", "0.7")):
        rows = table[(table["setting"] == setting) & (table["value"] == value)]
        assert len(rows) == len(hyps), (setting, value)
        assert not rows["verdict"].isin(["not recomputable"]).any(), rows.to_string()
        assert rows["note"].str.contains("added back").all(), rows["note"].tolist()
    off = table[(table["setting"] == "doublets") & (table["value"] == "off")]
    assert (off["n_cells_changed"] > 0).all() and (
        off["n_cells"] > configured["n_cells"].iloc[0]
    ).all()
    ambient = table[table["setting"] == "ambient_correction"]
    assert len(ambient) == len(hyps)
    if (ambient["verdict"] == "not available").any():
        assert ambient["reason"].str.contains("counts_ambient_corrected").all()
    # leave-one-marker-out: every marker of the configured types (SMALL_DEMO: TAM) and their
    # subtypes, annotated again where the data hold the marker (issue 28); no other type's
    out = table.loc[table["setting"] == "marker_out", "value"].unique()
    assert SMALL_DEMO["sensitivity"]["marker_out"] == ["TAM"]
    assert len(out) >= 20 and {"TAM:Adgre1", "TAM/TAM_Mrc1:Mrc1"} <= set(out), out
    assert all(v.split(":")[0].split("/")[0] == "TAM" for v in out), out
    # the retraining settings (SMALL_DEMO: the PCA baseline) and the subtype mix
    for setting, value in (("retrain", "pca"), ("subtype_mix", "adjusted"),
                           ("within_subtype", "myCAF"), ("de_method", "pydeseq2")):  # fmt: skip
        rows = table[(table["setting"] == setting) & (table["value"] == value)]
        assert len(rows) == len(hyps), (setting, value)
    for ext in ("pdf", "png"):
        assert (demo_run / f"results/figures/sensitivity.{ext}").stat().st_size > 0
        assert (demo_run / f"results/figures/specification_curve.{ext}").stat().st_size > 0


def test_confirmatory_table_says_how_each_verdict_holds_up(demo_run):
    """Issue 28's must-show on the small demo: >= 30 settings; the planted answers supported in
    >= 90% of them, the planted nulls (Gas6 from all TAMs or TAM_Spp1, AXL in the tumour) in
    <= 10%; the settings that change a verdict are named."""
    conf = pd.read_csv(demo_run / "results/confirmatory.tsv", sep="\t", keep_default_na=False)
    table = pd.read_csv(demo_run / "results/sensitivity.tsv", sep="\t", keep_default_na=False)
    VERDICTS = ("supported", "not supported", "inconclusive", "not testable")
    assert (conf["n_settings"] >= 30).all(), conf["n_settings"]
    supported = conf["verdict"] == "supported"
    assert (conf.loc[supported, "share_supported"] >= 0.9).all(), conf.to_string()
    assert (conf.loc[~supported, "share_supported"] <= 0.1).all(), conf.to_string()
    for rec in conf.to_dict("records"):
        mine = table[
            (table["hypothesis"] == rec["hypothesis"]) & (table["setting"] != "configured")
        ]
        computed = mine["verdict"].isin(VERDICTS)
        differ = mine[computed & (mine["verdict"] != rec["verdict"])]
        named = [s for s in rec["verdict_changed_by"].split("; ") if s]
        assert named == list(differ["setting"] + " " + differ["value"]), rec["hypothesis"]
