"""The per-rule conda environments (workflow/envs/) agree with the pip lock and with the code.

Each rule's ``conda:`` file must exist, pin only what the lock pins (at the lock's version,
conda names mapped to pip names), leave Snakemake out (Snakemake runs the jobs and hands each
script its ``snakemake`` object), and provide every third-party library the rule's adapter
imports, directly or through the ``tmeflow`` modules it reaches (a static import scan).
"""

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "workflow/rules"
SCRIPTS = REPO / "workflow/scripts"
ENV_DIR = REPO / "workflow/envs"

#: conda package name -> pip distribution name, where they differ.
CONDA_TO_PIP = {"pytorch": "torch", "python-igraph": "igraph", "matplotlib-base": "matplotlib"}
#: top-level import name -> pip distribution name, where they differ.
IMPORT_TO_DIST = {
    "sklearn": "scikit-learn",
    "yaml": "pyyaml",
    "scvi": "scvi-tools",
    "skmisc": "scikit-misc",
    "scib_metrics": "scib-metrics",
    "jsonschema": "jsonschema",
}
#: Libraries a rule uses without importing them (scanpy calls them by name).
RUNTIME_NEEDS = {
    "integrate_merge": {"scikit-misc": "HVG flavor='seurat_v3'"},
    "cluster_leiden": {"igraph": "sc.tl.leiden(flavor='igraph')", "umap-learn": "sc.tl.umap"},
    "annotate_cells": {"igraph": "sub-clustering with sc.tl.leiden(flavor='igraph')"},
}
#: Function-level imports in a reached tmeflow module that the rule never executes: the rule
#: imports the module for other functions. {rule: {distribution: why}}.
NOT_REACHED = {
    "annotate_cells": {
        "scvi-tools": "integrate.train_scvi is not called (set_threads only)",
        "torch": "integrate.train_scvi is not called (set_threads only)",
        "lightning": "integrate.train_scvi (its EpochLog callback) is not called",
        "scib-metrics": "metrics._scib is not called",
    },
    "cluster_leiden": {
        "scvi-tools": "integrate.train_scvi is not called (set_threads only)",
        "torch": "integrate.train_scvi is not called (set_threads only)",
        "lightning": "integrate.train_scvi (its EpochLog callback) is not called",
        "scib-metrics": "metrics._scib is not called",
    },
    "integrate_merge": {
        "scvi-tools": "integrate.train_scvi is not called",
        "torch": "integrate.train_scvi is not called",
        "lightning": "integrate.train_scvi (its EpochLog callback) is not called",
    },
    "markers_rank": {"scib-metrics": "metrics._scib is not called"},
    "figures_markers": {"scib-metrics": "metrics._scib is not called"},
    "figures_umap": {"scib-metrics": "metrics._scib is not called"},
}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[norm(name)] = version.strip()
    return pins


# --- environment files -------------------------------------------------------------------


def env_pins(path: Path) -> dict[str, tuple[str | None, str]]:
    """``{pip name: (version or None, 'conda'|'pip')}`` of an environment file."""
    env = yaml.safe_load(path.read_text())
    pins: dict[str, tuple[str | None, str]] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for spec in dep["pip"] or []:
                if spec.startswith("-"):  # a pip option line, e.g. --extra-index-url
                    continue
                name, _, version = spec.partition("==")
                pins[norm(name)] = (version or None, "pip")
        else:
            m = re.fullmatch(r"(?:[\w-]+::)?([A-Za-z0-9_.-]+)\s*(?:[=<>!~]=?\s*([^\s=]+))?.*", dep)
            assert m, f"{path.name}: cannot parse {dep!r}"
            name = norm(m.group(1))
            pins[CONDA_TO_PIP.get(name, name)] = (m.group(2), "conda")
    return pins


def env_files() -> list[Path]:
    return sorted(ENV_DIR.glob("*.yaml"))


def test_env_files_exist_and_old_single_env_is_gone():
    assert len(env_files()) >= 3
    assert not (REPO / "envs/tmeflow.yaml").exists()


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_pins_equal_the_lock(path):
    pins = lock()
    env = env_pins(path)
    assert env["python"][0] == "3.11", f"{path.name}: python must be 3.11 (pyproject, lock)"
    for name, (version, section) in env.items():
        if name in ("python", "pip"):
            continue
        assert version, f"{path.name}: {name} ({section}) is not pinned"
        assert name in pins, f"{path.name}: {name} ({section}) is not in requirements.lock"
        assert pins[name] == version, f"{path.name}: {name}={version}, lock {pins[name]}"


@pytest.mark.parametrize("path", env_files(), ids=lambda p: p.name)
def test_env_has_no_snakemake(path):
    names = set(env_pins(path))
    assert not {n for n in names if n == "snakemake" or n.startswith("snakemake-")}, path.name


def test_lock_is_fully_pinned_with_known_constraints():
    pins = lock()
    lines = [ln for ln in (REPO / "requirements.lock").read_text().splitlines() if ln.strip()]
    assert all("==" in ln for ln in lines if not ln.startswith("#"))
    assert pins["torch"] == "2.13.0"  # see the Makefile's TORCH_INDEX for CPU vs CUDA builds
    assert tuple(int(x) for x in pins["scipy"].split(".")[:2]) < (1, 17)
    assert tuple(int(x) for x in pins["statsmodels"].split(".")[:2]) < (0, 15)
    assert pins["scanpy"].startswith("1.11.")


# --- rules --------------------------------------------------------------------------------


def rules() -> dict[str, dict[str, str | Path]]:
    """``{rule: {"smk", "conda", "script"}}`` read from workflow/rules/*.smk."""
    out: dict[str, dict] = {}
    derived: list[tuple[str, str]] = []
    for smk in sorted(RULES.glob("*.smk")):
        blocks = re.split(r"^rule (\w+):\n", smk.read_text(), flags=re.M)
        for name, body in zip(blocks[1::2], blocks[2::2], strict=True):
            body = re.split(r"^\S", body, maxsplit=1, flags=re.M)[0]  # up to the next top level
            entry: dict = {"smk": smk}
            for key in ("conda", "script"):
                m = re.search(rf'^    {key}:\n        "([^"]+)"', body, flags=re.M)
                if m:
                    entry[key] = (smk.parent / m.group(1)).resolve()
            out[name] = entry
        derived += re.findall(r"^use rule (\w+) as (\w+) with:", smk.read_text(), re.M)
    # a derived rule (use rule X as Y with:) may come from another file (contrasts.smk) or
    # from another derived rule: resolve them in order of dependence
    while derived:
        ready = [(base, name) for base, name in derived if base in out]
        assert ready, f"use rule of unknown rules: {derived}"
        for base, name in ready:
            out[name] = {**out[base]}
            derived.remove((base, name))
    return out


def test_every_rule_has_env_log_threads_and_resources():
    for smk in sorted(RULES.glob("*.smk")):
        text = smk.read_text()
        n_rules = len(re.findall(r"^rule \w+:", text, flags=re.M))
        # a derived rule (use rule X as Y with:) inherits conda, threads and resources; its
        # outputs differ, so it names its own log (and benchmark)
        n_derived = len(re.findall(r"^use rule \w+ as \w+ with:", text, flags=re.M))
        for directive in ("conda:", "log:", "threads:", "resources:"):
            n = len(re.findall(rf"^    {directive}", text, flags=re.M))
            want = n_rules + n_derived if directive == "log:" else n_rules
            assert n == want, f"{smk.name}: {n_rules} rules, {n_derived} derived, {n} {directive}"
        assert len(re.findall(r"^        mem_mb=", text, flags=re.M)) >= n_rules, smk.name
        assert len(re.findall(r"^        runtime=", text, flags=re.M)) >= n_rules, smk.name


def test_every_rule_conda_file_exists_under_workflow_envs():
    found = rules()
    assert len(found) >= 20
    for name, entry in found.items():
        assert "conda" in entry, f"rule {name}: conda: is not a literal workflow/envs path"
        assert entry["conda"].is_file(), f"rule {name}: {entry['conda']} missing"
        assert entry["conda"].parent == ENV_DIR.resolve(), f"rule {name}: {entry['conda']}"


# --- static import scan -------------------------------------------------------------------


def _module_file(name: str) -> Path | None:
    p = SCRIPTS.joinpath(*name.split("."))
    if (p / "__init__.py").is_file():
        return p / "__init__.py"
    return p.with_suffix(".py") if p.with_suffix(".py").is_file() else None


def _guarded(node: ast.AST, parents: dict) -> bool:
    """An import inside ``try: ... except ImportError`` (optional, e.g. torch in set_threads)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try):
            for h in node.handlers:
                names = {getattr(t, "id", None) for t in ast.walk(h.type)} if h.type else set()
                if names & {"ImportError", "ModuleNotFoundError"}:
                    return True
    return False


def scan(path: Path, package: str) -> list[tuple[str, bool]]:
    """``[(imported module, at module level)]`` of a file; ImportError-guarded ones left out."""
    tree = ast.parse(path.read_text())
    parents = {c: p for p in ast.walk(tree) for c in ast.iter_child_nodes(p)}
    out = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom) or _guarded(node, parents):
            continue
        p, top = node, True
        while p in parents:
            p = parents[p]
            if isinstance(p, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                top = False
        if isinstance(node, ast.Import):
            out += [(a.name, top) for a in node.names]
            continue
        base = node.module or ""
        if node.level:
            parts = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        if base == "__future__":
            continue
        out.append((base, top))
        for a in node.names:
            if _module_file(f"{base}.{a.name}"):
                out.append((f"{base}.{a.name}", top))
                # a stage package: the private modules of the names the file uses from it
                table = lazy_names(f"{base}.{a.name}")
                used = _attributes(tree, a.asname or a.name)
                out += [(f"{base}.{a.name}.{table[n]}", top) for n in sorted(used) if n in table]
            elif a.name in lazy_names(base):
                out.append((f"{base}.{lazy_names(base)[a.name]}", top))
    return out


def lazy_names(package: str) -> dict[str, str]:
    """``{name: private module}`` of a stage package's lazy table (``_NAMES`` in __init__)."""
    f = _module_file(package)
    if f is None or f.name != "__init__.py":
        return {}
    for node in ast.parse(f.read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "_NAMES":
            table = ast.literal_eval(node.value)
            return {name: module for module, names in table.items() for name in names}
    return {}


def _attributes(tree: ast.AST, name: str) -> set[str]:
    """The attributes read of a name in a file (``stats.run_de`` -> ``run_de``)."""
    return {
        n.attr
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name) and n.value.id == name
    }


def needed_libraries(script: Path) -> dict[str, bool]:
    """``{distribution: needed for sure}`` for an adapter: its own imports and those of the
    tmeflow modules it reaches (transitively). False: a function-level import in a reached
    tmeflow module, or any import of a tmeflow module reached only through one (needed only
    if the rule calls that function)."""
    need: dict[str, bool] = {}
    seen: dict[str, bool] = {}  # module -> reached at module level all the way
    todo = [(script, "", True, True)]
    while todo:
        path, package, is_adapter, sure = todo.pop()
        for name, top in scan(path, package):
            root = name.split(".")[0]
            if root == "tmeflow":
                parts = name.split(".")
                for i in range(1, len(parts) + 1):
                    mod = ".".join(parts[:i])
                    f = _module_file(mod)
                    reach = sure and (top or is_adapter)
                    if f and (mod not in seen or (reach and not seen[mod])):
                        seen[mod] = reach
                        pkg = mod if f.name == "__init__.py" else ".".join(parts[: i - 1])
                        todo.append((f, pkg, False, reach))
            elif root not in sys.stdlib_module_names:
                dist = norm(IMPORT_TO_DIST.get(root, root))
                need[dist] = need.get(dist, False) or (sure and (top or is_adapter))
    return need


def provided(path: Path) -> set[str]:
    """Distributions an env file provides: those it lists and their requirements (read from
    the installed distributions' metadata, transitively; extras left out)."""
    have = set(env_pins(path)) - {"python", "pip"}
    todo = list(have)
    while todo:
        try:
            reqs = metadata.requires(todo.pop()) or []
        except metadata.PackageNotFoundError:
            continue
        for r in map(Requirement, reqs):
            if r.marker and "extra" in str(r.marker):
                continue
            if r.marker and not r.marker.evaluate():
                continue
            if norm(r.name) not in have:
                have.add(norm(r.name))
                todo.append(norm(r.name))
    return have


def missing_libraries(rule: str, script: Path, env: Path) -> list[str]:
    have = provided(env)
    waived = NOT_REACHED.get(rule, {})
    need = needed_libraries(script)
    out = [
        f"{dist} ({'imported' if sure else 'function-level import'})"
        for dist, sure in sorted(need.items())
        if dist not in have and not (not sure and dist in waived)
    ]
    out += [f"{d} ({why})" for d, why in RUNTIME_NEEDS.get(rule, {}).items() if d not in have]
    return out


def test_every_rule_env_provides_what_its_adapter_imports():
    problems = []
    for name, entry in rules().items():
        if "script" not in entry:
            continue
        miss = missing_libraries(name, entry["script"], entry["conda"])
        if miss:
            problems.append(f"rule {name} ({entry['conda'].name}) lacks: {', '.join(miss)}")
    assert not problems, "\n".join(problems)


def test_waivers_name_real_rules_and_real_lazy_imports():
    found = rules()
    for rule, waived in NOT_REACHED.items():
        assert rule in found, f"NOT_REACHED names unknown rule {rule}"
        need = needed_libraries(found[rule]["script"])
        for dist in waived:
            assert need.get(dist) is False, f"{rule}: {dist} is not a function-level import"


def test_import_check_fails_for_a_missing_library(tmp_path):
    """The scan is not vacuous: an env without pydeseq2 or gseapy fails the DE/GSEA rules."""
    stats = ENV_DIR / "stats.yaml"
    found = rules()
    for drop, rule in (("pydeseq2", "de_pseudobulk"), ("gseapy", "gsea_prerank")):
        lean = tmp_path / f"no-{drop}.yaml"
        lean.write_text("\n".join(ln for ln in stats.read_text().splitlines() if drop not in ln))
        assert any(drop in m for m in missing_libraries(rule, found[rule]["script"], lean))
        assert not missing_libraries(rule, found[rule]["script"], stats)
    core = ENV_DIR / "core.yaml"
    assert any(
        "igraph" in m
        for m in missing_libraries("cluster_leiden", SCRIPTS / "cluster_leiden.py", core)
    )


# --- Makefile: which torch build -----------------------------------------------------------


def _make_env_commands(*args: str) -> str:
    import shutil
    import subprocess

    if not shutil.which("make"):
        pytest.skip("make not installed")
    run = subprocess.run(
        ["make", "-n", "-B", "env", *args], cwd=REPO, capture_output=True, text=True, check=True
    )
    return run.stdout


def test_make_env_default_installs_the_lock_only():
    out = _make_env_commands()
    assert "-r requirements.lock" in out
    assert "--index-url" not in out


def test_make_env_torch_index_installs_torch_first_from_that_index():
    index = "https://download.pytorch.org/whl/cpu"
    lines = _make_env_commands(f"TORCH_INDEX={index}").splitlines()
    torch = next(i for i, ln in enumerate(lines) if f"--index-url {index}" in ln)
    assert f'"torch=={lock()["torch"]}"' in lines[torch] and "--no-deps" in lines[torch]
    assert torch < next(i for i, ln in enumerate(lines) if "-r requirements.lock" in ln)
