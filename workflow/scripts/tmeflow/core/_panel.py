"""Marker panels: loading, validation and marker lookups.

A panel (``config/markers/*.yaml``) maps cell-type labels to marker sets, each with the source
it comes from; a cell type may have subtypes (identity subtypes or ``state: true``
programmes) and may be a form of another cell type (``parent``). The entries are checked
against ``workflow/schemas/panel.schema.yaml`` with the validator of :mod:`tmeflow.core._config`;
what a schema cannot express (a parent is another cell type of the same species without a
parent of its own, and has no subtypes itself) is checked here, also after panels are merged.
"""

import logging
from collections.abc import Iterable
from os import PathLike
from pathlib import Path

import yaml

from tmeflow.core._config import ConfigError, schema_errors

logger = logging.getLogger(__name__)

#: The JSON schema of a marker panel.
SCHEMA = Path(__file__).resolve().parents[3] / "schemas" / "panel.schema.yaml"
_SCHEMA_HINT = "see workflow/schemas/panel.schema.yaml for every key"


def load_panel(path: str | PathLike[str]) -> dict:
    """Read a marker panel YAML and check it.

    Parameters
    ----------
    path
        The panel file (``cell_types: {label: {markers, source, ...}}``).

    Returns
    -------
    dict
        The panel as read.

    Raises
    ------
    FileNotFoundError
        ``path`` is not a file.
    ConfigError
        The panel breaks the schema or the parent rules; every problem is listed, naming the
        panel file, the entry and the fix.
    """
    path = Path(path)
    if not path.is_file():
        msg = f"marker panel {str(path)!r} not found; check the config key annotation.panel"
        raise FileNotFoundError(msg)
    with open(path) as fh:
        panel = yaml.safe_load(fh)
    _, errors = schema_errors(panel, SCHEMA)
    if errors:
        msgs = list(dict.fromkeys(_error_message(e, path) for e in errors))
        raise ConfigError("Invalid marker panel:\n  " + "\n  ".join(msgs))
    _check_parents(panel, path)
    return panel


def load_panels(paths: str | PathLike[str] | Iterable[str | PathLike[str]]) -> dict:
    """Read one panel or merge several.

    A later panel adds cell types or replaces an entry of the same label (subtypes included),
    so a user panel can extend or override the shipped one.

    Parameters
    ----------
    paths
        One panel file or several, in order.

    Returns
    -------
    dict
        The merged panel; its ``name`` joins the panels' names with ``+``.
    """
    paths = [paths] if isinstance(paths, str | PathLike) else list(paths)
    if not paths:
        raise ValueError("no marker panel given; set the config key 'annotation.panel'")
    merged = load_panel(paths[0])
    names = [str(merged.get("name", Path(paths[0]).stem))]
    for path in paths[1:]:
        extra = load_panel(path)
        replaced = sorted(set(extra["cell_types"]) & set(merged["cell_types"]))
        if replaced:
            logger.info("panel %s replaces entries %s", path, replaced)
        merged["cell_types"] = {**merged["cell_types"], **extra["cell_types"]}
        names.append(str(extra.get("name", Path(path).stem)))
    merged["name"] = "+".join(names)
    _check_parents(merged, "+".join(str(p) for p in paths))
    return merged


def _error_message(error, path: Path) -> str:
    """One schema error as: panel file, entry, what is wrong and the fix."""
    where = _entry_of(list(error.absolute_path))
    what = f"marker panel {str(path)!r}" + (f", entry {where[0]!r}" if where[0] else "")
    key = where[1]
    schema = error.schema if isinstance(error.schema, dict) else {}
    props = schema.get("properties", {})
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(props))
        return (
            f"{what}: unknown key(s) {extra}. Allowed keys: {sorted(props)}. "
            f"Check the spelling ({_SCHEMA_HINT})."
        )
    if error.validator == "required":
        missing = [k for k in error.validator_value if k not in error.instance]
        return "; ".join(
            f"{what}: needs a {k!r} key: {_description(props.get(k, {}))}" for k in missing
        )
    fix = (schema.get("description") or "").strip().replace("\n", " ")
    if error.validator == "not":
        return f"{what}: key {key!r}: {fix}"
    where_key = f"key {key!r}" if key else "value"
    return f"{what}: {where_key}: {error.message}. Fix: {fix}"


def _entry_of(parts: list) -> tuple[str, str]:
    """Split a schema error's path into the entry (``CAF``, ``CAF.myCAF``) and the key in it."""
    if len(parts) < 2 or parts[0] != "cell_types":
        return "", ".".join(map(str, parts))
    if len(parts) >= 4 and parts[2] == "subtypes":
        return f"{parts[1]}.{parts[3]}", ".".join(map(str, parts[4:]))
    return str(parts[1]), ".".join(map(str, parts[2:]))


def _description(node: dict) -> str:
    """The description of a schema node, following a local ``$ref``."""
    if "$ref" in node and "description" not in node:
        defs = yaml.safe_load(SCHEMA.read_text()).get("$defs", {})
        node = defs.get(node["$ref"].rsplit("/", 1)[-1], {})
    return " ".join(str(node.get("description", "")).split())


def _check_parents(panel: dict, path) -> None:
    """A ``parent`` names another cell type of the same species that has no parent itself.

    An entry with a parent has no subtypes of its own (they belong under the parent).
    """
    types = panel["cell_types"]
    for label, entry in types.items():
        if "parent" not in entry:
            continue
        parent = entry["parent"]
        if parent not in types or parent == label or "parent" in types[parent]:
            raise ConfigError(
                f"marker panel {str(path)!r}: entry {label!r} has parent {parent!r}, which must "
                "be another cell type of the panel without a parent of its own"
            )
        if entry.get("species", "mouse") != types[parent].get("species", "mouse"):
            raise ConfigError(
                f"marker panel {str(path)!r}: entry {label!r} and its parent {parent!r} have "
                "different species; give both the same 'species'"
            )
        if entry.get("subtypes"):
            raise ConfigError(
                f"marker panel {str(path)!r}: entry {label!r} has a parent; list subtypes under "
                f"{parent!r} instead"
            )


def parent_of(panel: dict) -> dict[str, str]:
    """Cell-type entry -> the cell type it is reported as (itself unless it has a ``parent``).

    Parameters
    ----------
    panel
        A panel from :func:`load_panels`.

    Returns
    -------
    dict
        Entry label -> reported label.
    """
    return {label: str(e.get("parent", label)) for label, e in panel["cell_types"].items()}


def panel_markers(panel: dict, *, species: str | None = None) -> dict[str, list[str]]:
    """Label -> markers for the panel's cell types (optionally of one species only).

    Parameters
    ----------
    panel
        A panel from :func:`load_panels`.
    species
        ``mouse`` or ``human`` (an entry without ``species`` is mouse); ``None``: all entries.

    Returns
    -------
    dict
        Label -> its markers.
    """
    return {
        label: list(entry["markers"])
        for label, entry in panel["cell_types"].items()
        if species is None or entry.get("species", "mouse") == species
    }


def subtype_markers(
    panel: dict, cell_type: str, *, kind: str | None = None
) -> dict[str, list[str]]:
    """Subtype -> markers of one cell type ({} when it has no subtypes).

    Parameters
    ----------
    panel
        A panel from :func:`load_panels`.
    cell_type
        The cell-type label.
    kind
        ``"identity"`` keeps the mutually exclusive subtypes, ``"state"`` the programmes
        marked ``state: true``; ``None`` keeps both.

    Returns
    -------
    dict
        Subtype -> its markers.
    """
    if kind not in (None, "identity", "state"):
        raise ValueError(f"kind must be 'identity', 'state' or None, not {kind!r}")
    entry = panel["cell_types"].get(cell_type, {})
    return {
        k: list(v["markers"])
        for k, v in (entry.get("subtypes") or {}).items()
        if kind is None or bool(v.get("state", False)) == (kind == "state")
    }


def marker_sources(panel: dict) -> dict[str, str]:
    """Label -> source of every marker set (cell types and subtypes).

    Parameters
    ----------
    panel
        A panel from :func:`load_panels`.

    Returns
    -------
    dict
        Label -> the paper or database its markers come from.
    """
    out = {}
    for label, entry in panel["cell_types"].items():
        out[label] = str(entry.get("source", ""))
        for sub, sub_entry in (entry.get("subtypes") or {}).items():
            out[sub] = str(sub_entry.get("source", ""))
    return out


def all_markers(panel: dict) -> dict[str, list[str]]:
    """Label -> markers of every cell type and subtype, in panel order.

    A subtype named like an earlier label replaces it.

    Parameters
    ----------
    panel
        A panel from :func:`load_panels`.

    Returns
    -------
    dict
        Label -> its markers (as listed, duplicates kept).
    """
    out: dict[str, list[str]] = {}
    for label, entry in panel["cell_types"].items():
        out[label] = list(entry["markers"])
        for sub, sub_entry in (entry.get("subtypes") or {}).items():
            out[sub] = list(sub_entry["markers"])
    return out


def species_labels(panel: dict, species: str) -> set[str]:
    """The cell-type labels a panel can give cells of one species (forms reported as parents).

    Parameters
    ----------
    panel
        A panel from :func:`load_panels`.
    species
        ``mouse`` or ``human`` (an entry without ``species`` is mouse).

    Returns
    -------
    set of str
        The labels of the species' entries, an entry with a ``parent`` counted as its parent.
    """
    parents = parent_of(panel)
    return {parents[label] for label in panel_markers(panel, species=species)}


def species_warnings(panel: dict, species_mode: str) -> list[str]:
    """What a panel leaves out of a run of ``species_mode`` (config ``species``), as warnings.

    A human-only run whose panel has no human entry but ``tumor`` (the default panel,
    ``mouse_tme.yaml``) labels every cell tumour or unassigned; a mouse-only run whose ``tumor``
    entry is human (the default) cannot call any cell tumour. Xenografts: none.

    Parameters
    ----------
    panel
        A panel from :func:`load_panels` (every panel of the run merged).
    species_mode
        ``human``, ``mouse`` or ``xenograft``.

    Returns
    -------
    list of str
        Warnings (empty when the panel fits the run).
    """
    if species_mode == "human" and species_labels(panel, "human") <= {"tumor"}:
        return [
            "species: human, but the marker panel's only human entry is 'tumor' (the others "
            "are mouse entries): every cell will be 'tumor' or 'unassigned'. For a human "
            "tumour micro-environment use annotation.panel: config/markers/human_tme.yaml "
            "(config/presets/human_only/config.yaml)."
        ]
    if species_mode == "mouse" and "tumor" not in species_labels(panel, "mouse"):
        return [
            "species: mouse, and the marker panel has no mouse 'tumor' entry (mouse_tme.yaml's "
            "is human, a xenograft's graft): no cell can be called tumour. For a syngeneic "
            "mouse tumour add annotation.extra_panels: [config/markers/mouse_tumor.yaml] "
            "(config/presets/mouse_only/config.yaml)."
        ]
    return []
