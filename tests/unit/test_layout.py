"""The library's layout: one subpackage per stage, imports only downwards, no cycle, and the
registries (doublet callers, input formats) agreeing with the schemas users write against."""

import ast
import sys
from pathlib import Path

import networkx as nx
import pytest
import yaml

from tmeflow import cells, inputs

REPO = Path(__file__).resolve().parents[2]
LIB = REPO / "workflow" / "scripts" / "tmeflow"
SCHEMAS = REPO / "workflow" / "schemas"

#: Stages in the order of the workflow; a module may import its own stage and earlier ones.
STAGES = ["core", "inputs", "cells", "embed", "annotate", "stats", "export", "plots"]
#: The demo simulator stands beside the workflow: it may use the core only.
SIMULATE_MAY_USE = {"core", "simulate"}
#: Modules allowed outside a subpackage (besides __init__): shared helpers, no stage imports.
TOP_LEVEL_HELPERS = {"_utils", "_lazy"}


def modules() -> dict[str, Path]:
    return {
        ".".join(p.relative_to(LIB.parent).with_suffix("").parts): p
        for p in sorted(LIB.rglob("*.py"))
    }


def imports_of(path: Path) -> set[str]:
    """Every tmeflow module a file imports: module level, in functions, under TYPE_CHECKING."""
    names = set(modules())
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("tmeflow")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tmeflow"):
            out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names} & names
    return {m for m in out if m in names or f"{m}.__init__" in names}


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 else parts[1].removesuffix(".__init__")


def test_every_module_lives_in_a_stage_package():
    loose = [
        p.stem for p in LIB.glob("*.py") if p.stem != "__init__" and p.stem not in TOP_LEVEL_HELPERS
    ]
    assert not loose, f"modules outside a stage package: {loose}"
    assert len(TOP_LEVEL_HELPERS) <= 2
    packages = {p.name for p in LIB.iterdir() if (p / "__init__.py").is_file()}
    assert packages == set(STAGES) | {"simulate"}


def test_imports_run_only_to_the_same_or_an_earlier_stage():
    bad = []
    for name, path in modules().items():
        parts = name.split(".")
        if len(parts) == 2 and parts[1] in TOP_LEVEL_HELPERS:
            uses = {stage(m) for m in imports_of(path) if len(m.split(".")) > 2}
            bad += [f"{name} -> {u}" for u in uses]
            continue
        if len(parts) < 3:
            continue
        own = parts[1]
        for target in imports_of(path):
            tparts = target.split(".")
            if len(tparts) < 2 or tparts[1] in TOP_LEVEL_HELPERS or tparts[1] == "__init__":
                continue
            other = tparts[1]
            if own == "simulate":
                ok = other in SIMULATE_MAY_USE
            else:
                ok = other in STAGES and STAGES.index(other) <= STAGES.index(own)
            if not ok:
                bad.append(f"{name} -> {target}")
    assert not bad, "imports from a later stage:\n" + "\n".join(bad)


def test_no_import_cycle():
    graph = nx.DiGraph()
    for name, path in modules().items():
        graph.add_node(name)
        for target in imports_of(path):
            # a module's own package __init__ re-exports it lazily: not an import of the package
            if target != name.rsplit(".", 1)[0]:
                graph.add_edge(name, target)
    cycles = list(nx.simple_cycles(graph))
    assert not cycles, f"import cycles: {cycles}"


def test_the_layout_checks_can_fail(tmp_path, monkeypatch):
    """A later-stage import and a cycle are caught (the checks above are not vacuous)."""
    fake = tmp_path / "tmeflow"
    (fake / "cells").mkdir(parents=True)
    (fake / "stats").mkdir()
    for pkg in ("", "cells", "stats"):
        (fake / pkg / "__init__.py").write_text("")
    (fake / "cells" / "_a.py").write_text("from tmeflow.stats import _b\n")
    (fake / "stats" / "_b.py").write_text("from tmeflow.cells import _a\n")
    monkeypatch.setattr(sys.modules[__name__], "LIB", fake)
    with pytest.raises(AssertionError, match="later stage"):
        test_imports_run_only_to_the_same_or_an_earlier_stage()
    with pytest.raises(AssertionError, match="cycles"):
        test_no_import_cycle()


def _config_enum(*keys: str) -> list[str]:
    node = yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text())
    for key in keys:
        node = node["properties"][key]
    return node["enum"]


def test_doublet_registry_and_config_schema_agree():
    """Adding a caller is its function, one registry line and its name in the two enums."""
    assert set(_config_enum("qc", "doublet_method")) == set(cells.DOUBLET_METHODS)
    assert set(_config_enum("qc", "doublet_consensus")) == set(cells.CONSENSUS_RULES)
    assert set(cells.DOUBLET_CALLERS) <= set(cells.DOUBLET_METHODS)
    for name, caller in cells.DOUBLET_CALLERS.items():
        assert callable(caller.run) and callable(caller.skip), name


def test_de_methods_and_config_schema_agree():
    """The sensitivity table's DE methods are the pseudobulk tests run_de can run."""
    from tmeflow import stats

    node = yaml.safe_load((SCHEMAS / "config.schema.yaml").read_text())
    items = node["properties"]["sensitivity"]["properties"]["de_methods"]["items"]
    assert set(items["enum"]) == set(stats.PSEUDOBULK_METHODS)


def test_format_registry_and_sample_sheet_schema_agree():
    """Adding a format is its reader, one registry line and its name in the sheet's enum."""
    schema = yaml.safe_load((SCHEMAS / "samples.schema.yaml").read_text())
    enum = set(schema["properties"]["format"]["enum"]) - {"", "auto"}
    assert enum == set(inputs.FORMATS) == set(inputs.FORMAT_READERS)
    for fmt in inputs.FORMATS:
        assert callable(inputs.format_reader(fmt)), fmt


def test_registry_checks_fail_on_a_mismatch(monkeypatch):
    """A caller or format registered but not in the schema fails the two checks above."""
    from tmeflow.cells import _doublets
    from tmeflow.inputs import _formats

    monkeypatch.setitem(_doublets.DOUBLET_CALLERS, "new_caller", _doublets.DoubletCaller(print))
    monkeypatch.setattr(_doublets, "DOUBLET_METHODS", ("both", *_doublets.DOUBLET_CALLERS))
    with pytest.raises(AssertionError):
        test_doublet_registry_and_config_schema_agree()
    monkeypatch.setitem(_formats.FORMAT_READERS, "loom", "_read_counts:read_loom")
    monkeypatch.setattr(_formats, "FORMATS", tuple(_formats.FORMAT_READERS))
    with pytest.raises(AssertionError):
        test_format_registry_and_sample_sheet_schema_agree()


def test_the_workflow_parse_step_imports_no_heavy_library():
    """Every Snakemake start parses the workflow, and so does every job of a cluster run (a
    SLURM job starts Snakemake again): the parse step imports only what it needs (config and
    sheet checks, the demo's file list), not anndata, scanpy or torch (about 3 s a start)."""
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "snakemake", "-n", "--quiet", "rules"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:")}  # fmt: skip
    assert "tmeflow.core" in imported  # the check sees the workflow's own imports
    heavy = {"anndata", "scanpy", "torch", "h5py", "matplotlib", "scvi"} & imported
    assert not heavy, heavy
