"""Parse-time validation of the sample sheet: columns, conditions, files, URLs, splits.

Called from ``workflow/rules/common.smk`` so that a bad sheet fails before any job runs, with a
message that names the sample, the column and the fix.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import pandas as pd

from tmeflow.core._config import ConfigError, describe_key, key_path, load_schema
from tmeflow.inputs._downloads import is_url, url_file_name
from tmeflow.inputs._formats import FORMATS

REQUIRED_COLUMNS = ("sample", "condition", "path")
#: The columns of an mtx triplet given by URL: the barcode and feature lists beside the matrix
#: URL in ``path``, each with an optional checksum.
TRIPLET_URL_COLUMNS = ("barcodes", "features", "barcodes_sha256", "features_sha256")
INPUT_COLUMNS = (
    "sample",
    "path",
    "sha256",
    "format",
    "obs_column",
    "obs_value",
    "member",
    *TRIPLET_URL_COLUMNS,
)
"""Sheet columns that describe the input; every other column is sample metadata (obs)."""
SPLIT_COLUMNS = ("obs_column", "obs_value")


def read_sample_sheet(path: str | Path) -> pd.DataFrame:
    """Read the TSV sample sheet as strings (comment lines starting with '#' skipped)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(
            f"sample sheet {str(path)!r} does not exist; set the config key 'samples' to your "
            "TSV with columns sample, condition, path."
        )
    sheet = pd.read_csv(path, sep="\t", dtype=str, comment="#", keep_default_na=False)
    sheet.columns = [c.strip() for c in sheet.columns]
    return sheet


def validate_sample_sheet(
    sheet: pd.DataFrame,
    schema_path: str | Path,
    *,
    contrast: dict,
    covariates: Iterable[str] = (),
    sheet_path: str = "the sample sheet",
    base_dir: str | Path = ".",
    producible: Iterable[str] = (),
    arms: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Check the sample sheet before any job runs and return it indexed by sample.

    ``arms``: every level the contrasts compare (:func:`tmeflow.core.study_arms`); ``None``:
    the ``contrast``'s reference and test.

    Checks: required columns (with a spelling hint), the per-row schema (sample-id pattern),
    duplicate ids, an empty sheet, conditions outside the contrast, covariate columns, and
    that every ``path`` exists (or is produced by the workflow, e.g. the demo). URLs
    (http/https) are accepted and checked at download time. A sheet whose samples all have ONE
    contrast level (e.g. a single sample) is accepted: the workflow runs, and the comparisons
    (DE, composition, GSEA) report "nothing to compare"; :func:`design_warnings` says so.
    """
    import difflib

    missing = [c for c in REQUIRED_COLUMNS if c not in sheet.columns]
    if missing:
        hints = []
        for col in missing:
            close = difflib.get_close_matches(col, list(sheet.columns), n=1, cutoff=0.6)
            hints.append(f"'{col}'" + (f" (found '{close[0]}': a misspelling?)" if close else ""))
        raise ConfigError(
            f"{sheet_path}: missing required column(s) {', '.join(hints)}. Required columns are "
            f"{list(REQUIRED_COLUMNS)}; extra metadata columns are allowed."
        )
    schema = load_schema(schema_path)
    validator = jsonschema.Draft202012Validator(schema)
    for i, row in enumerate(sheet.to_dict(orient="records"), start=2):
        for error in validator.iter_errors(row):
            key = key_path(error)
            raise ConfigError(
                f"{sheet_path}, line {i}, column '{key}': {error.message}. "
                f"{describe_key(schema, error.absolute_path)}"
            )
    if sheet.empty:
        raise ConfigError(
            f"{sheet_path}: no samples; add one row per sample (columns sample, condition, path)."
        )
    dups = sorted(sheet["sample"][sheet["sample"].duplicated()].unique())
    if dups:
        raise ConfigError(
            f"{sheet_path}: duplicate sample id(s) {dups}; every sample needs its own id."
        )
    column = contrast["column"]
    if column not in sheet.columns:
        raise ConfigError(
            f"config key 'contrast.column' is {column!r} but {sheet_path} has no such column "
            f"(columns: {list(sheet.columns)})."
        )
    levels = [contrast["reference"], contrast["test"]] if arms is None else list(arms)
    bad = sheet.loc[~sheet[column].isin(levels), ["sample", column]]
    if len(bad):
        pairs = ", ".join(f"{s}={c!r}" for s, c in bad.itertuples(index=False))
        if len(levels) == 2:
            allowed = f"{levels[0]!r} (reference) or {levels[1]!r} (test)"
        else:
            allowed = "one of the compared arms " + ", ".join(map(repr, levels))
        raise ConfigError(
            f"{sheet_path}: {column} value(s) not in the contrast ({pairs}); every sample must be "
            f"{allowed}. Fix the sheet, or the config key 'contrast' (the primary comparison), "
            "or add the arm to a comparison in 'contrasts' (a list of {reference, test})."
        )
    for cov in covariates:
        if cov not in sheet.columns:
            raise ConfigError(
                f"config key 'de.covariates' names {cov!r}, which is not a column of {sheet_path}."
            )
    producible = {str(Path(p)) for p in producible}
    base_dir = Path(base_dir)
    for sample, path in zip(sheet["sample"], sheet["path"], strict=True):
        if is_url(path):
            continue
        p = Path(path) if Path(path).is_absolute() else base_dir / path
        if p.exists():
            continue
        norm = str(Path(path))
        if norm in producible or any(q.startswith(norm + "/") for q in producible):
            continue
        raise ConfigError(
            f"sample {sample!r}: input {path!r} does not exist. Fix the 'path' column of "
            f"{sheet_path} (paths are relative to the working directory)."
        )
    check_obs_splits(sheet, sheet_path=sheet_path, base_dir=base_dir)
    check_bundle_rows(sheet, sheet_path=sheet_path, base_dir=base_dir)
    return sheet.set_index("sample", drop=False)


def metadata_columns(sheet: pd.DataFrame) -> list[str]:
    """The sheet's columns that are sample metadata, kept in ``obs`` at ingest.

    All columns but :data:`INPUT_COLUMNS` (so ``condition`` is one; ``obs_column`` and
    ``obs_value`` describe the input and are not).
    """
    return [c for c in sheet.columns if c not in INPUT_COLUMNS]


def _cell(row: Any, column: str) -> str:
    return str(row.get(column, "") or "").strip()


def _split_format(path: str, fmt: str, base_dir: Path) -> str:
    """How a split row's path is read (the ``format`` cell, else its name), for messages."""
    from tmeflow.core._errors import InputError
    from tmeflow.inputs._formats import detect_format

    if fmt not in ("", "auto"):
        return "h5ad" if fmt == "h5ad" else f"a {fmt} input (sheet column 'format')"
    name = url_file_name(path) if is_url(path) else Path(path).name
    if name.lower().endswith(".h5ad"):
        return "h5ad"
    local = Path(path) if Path(path).is_absolute() else base_dir / path
    if not is_url(path) and local.exists():
        try:
            return f"a {detect_format(local)} input"
        except InputError:
            return "an input of unknown format"
    return "not an h5ad"


def check_obs_splits(
    sheet: pd.DataFrame, *, sheet_path: str = "the sample sheet", base_dir: str | Path = "."
) -> None:
    """Parse-time checks of rows that take part of a deposited h5ad (``obs_column``/``obs_value``).

    A row with both cells set takes the cells of its ``path`` whose ``obs[obs_column]`` equals
    ``obs_value`` (string equality). For a local file only its ``obs`` is read, once per
    distinct file; URL rows are checked at ingest, after the download.

    Parameters
    ----------
    sheet
        The sample sheet (columns ``sample`` and ``path``; ``format``, ``obs_column`` and
        ``obs_value`` optional; empty cells mean "not given").
    sheet_path
        The sheet's name, for messages.
    base_dir
        What relative paths are relative to.

    Raises
    ------
    ConfigError
        Only one of the two cells given; a split of an input that is not an h5ad (no cell
        metadata); two rows that would share cells: the same path with the same column and
        value, a row taking a whole file that another row splits, or (local files) selections
        of different columns that meet; a column the file's obs lacks (the available columns
        are listed); a value that selects no cell (the column's first values are listed).
    """
    if not any(c in sheet.columns for c in SPLIT_COLUMNS):
        return
    base_dir = Path(base_dir)
    rows = []
    for _, row in sheet.iterrows():
        sample, path = str(row["sample"]), str(row["path"])
        column, value = _cell(row, "obs_column"), _cell(row, "obs_value")
        if bool(column) != bool(value):
            given, missing = ("obs_column", "obs_value") if column else ("obs_value", "obs_column")
            raise ConfigError(
                f"{sheet_path}: sample {sample!r}: column '{given}' is set but '{missing}' is "
                f"empty. Give both (the sample's cells are those of {path!r} with "
                "obs[obs_column] == obs_value) or neither (the sample is the whole file)."
            )
        if column:
            fmt = _split_format(path, _cell(row, "format"), base_dir)
            if fmt != "h5ad":
                raise ConfigError(
                    f"{sheet_path}: sample {sample!r}: column 'obs_column' ({column!r}) selects "
                    f"cells by their metadata, but {path!r} is {fmt}, which has none. "
                    "Only an h5ad input can be split: clear obs_column/obs_value, or give each "
                    "sample its own matrix file."
                )
        key = (
            path
            if is_url(path)
            else str((Path(path) if Path(path).is_absolute() else base_dir / path).resolve())
        )
        rows.append((sample, path, key, column, value))
    by_file: dict[str, list[tuple[str, str, str, str, str]]] = {}
    for r in rows:
        by_file.setdefault(r[2], []).append(r)
    for key, group in by_file.items():
        if not any(r[3] for r in group):
            continue
        whole = [r[0] for r in group if not r[3]]
        if whole:
            others = [r[0] for r in group if r[0] != whole[0]]
            raise ConfigError(
                f"{sheet_path}: sample {whole[0]!r} takes the whole of {group[0][1]!r} (no "
                f"obs_column), so it shares cells with sample(s) {others} that split the same "
                "file. Set obs_column/obs_value on every row of a split file."
            )
        seen: dict[tuple[str, str], str] = {}
        for sample, path, _, column, value in group:
            if (column, value) in seen:
                raise ConfigError(
                    f"{sheet_path}: samples {seen[(column, value)]!r} and {sample!r} both take "
                    f"the cells of {path!r} with obs_column {column!r} = {value!r}; no cell may "
                    "land in two samples. Fix the obs_value of one of them."
                )
            seen[(column, value)] = sample
        if not is_url(key) and Path(key).is_file():
            _check_local_split(key, group, sheet_path=sheet_path)


def _check_local_split(
    file: str, group: list[tuple[str, str, str, str, str]], *, sheet_path: str
) -> None:
    """Column present, value selecting cells, no cell in two samples: from ``obs`` only."""
    import numpy as np

    from tmeflow.inputs._read_h5ad import first_values, obs_mask, read_h5ad_obs

    try:
        obs = read_h5ad_obs(file)
    except (OSError, KeyError, ValueError) as exc:
        raise ConfigError(
            f"{sheet_path}: sample {group[0][0]!r}: cannot read the obs of {group[0][1]!r} "
            f"({type(exc).__name__}: {exc}). Check that it is an h5ad file."
        ) from exc
    owner = np.full(len(obs), -1)
    for i, (sample, path, _, column, value) in enumerate(group):
        if column not in obs.columns:
            raise ConfigError(
                f"{sheet_path}: sample {sample!r}: column 'obs_column' is {column!r}, which is "
                f"not a column of the obs of {path!r}. Set it to one of {list(obs.columns)}."
            )
        mask = obs_mask(obs, column, value)
        if not mask.any():
            raise ConfigError(
                f"{sheet_path}: sample {sample!r}: column 'obs_value' is {value!r}, which "
                f"selects no cell of {path!r} (obs column {column!r} holds "
                f"{first_values(obs[column])}). Set obs_value to one of these."
            )
        clash = mask & (owner >= 0)
        if clash.any():
            other = group[int(owner[clash][0])]
            raise ConfigError(
                f"{sheet_path}: samples {other[0]!r} ({other[3]} = {other[4]!r}) and {sample!r} "
                f"({column} = {value!r}) share {int(clash.sum())} cell(s) of {path!r}; no cell "
                "may land in two samples. Split the file by one column, or fix the values."
            )
        owner[mask] = i


def check_bundle_rows(
    sheet: pd.DataFrame, *, sheet_path: str = "the sample sheet", base_dir: str | Path = "."
) -> None:
    """Parse-time checks of the ``member`` column (inputs inside a GEO ``_RAW.tar`` bundle).

    A ``member`` is only meaningful for a tar ``path`` (by name, or with format ``geo_tar``).
    For a local tar its listing is read (member headers only) once per file: every row's
    member must name exactly one input (:func:`tmeflow.inputs.pick_input`) and no two rows may
    take the same one. URL tars are checked at ingest, after the download.

    Raises
    ------
    ConfigError
        A member on a path that is not a tar; a member that names no input or several (the
        inputs are listed); two samples taking the same input; an unreadable local tar.
    """
    from tmeflow.core._errors import InputError
    from tmeflow.inputs._geo_tar import is_bundle, list_bundle, pick_input

    base_dir = Path(base_dir)
    taken: dict[tuple[str, str], str] = {}
    listings: dict[str, dict] = {}
    for _, row in sheet.iterrows():
        sample, path = str(row["sample"]), str(row["path"])
        member, fmt = _cell(row, "member"), _cell(row, "format")
        bundle = fmt == "geo_tar" or (fmt in ("", "auto") and is_bundle(path))
        if member and not bundle:
            raise ConfigError(
                f"{sheet_path}: sample {sample!r}: column 'member' is {member!r} but path "
                f"{path!r} is not a tar (.tar, .tar.gz, .tgz). Clear the member cell, or point "
                "path at the GEO _RAW.tar bundle that holds the sample's files."
            )
        if not bundle or is_url(path):
            continue
        local = Path(path) if Path(path).is_absolute() else base_dir / path
        if not local.is_file():
            continue  # produced by the workflow, or reported by the existence check
        key = str(local.resolve())
        try:
            if key not in listings:
                listings[key] = list_bundle(local, sample=sample)
            chosen = pick_input(listings[key], member, sample=sample, path=path)
        except InputError as exc:
            raise ConfigError(f"{sheet_path}: {exc}") from exc
        if (key, chosen.key) in taken:
            raise ConfigError(
                f"{sheet_path}: samples {taken[(key, chosen.key)]!r} and {sample!r} both take "
                f"{chosen.key!r} of {path!r}; fix the 'member' of one of them."
            )
        taken[(key, chosen.key)] = sample


def design_warnings(
    sheet: pd.DataFrame, contrast: dict, contrasts: Iterable[dict] = ()
) -> list[str]:
    """Warnings about the design of a sheet that :func:`validate_sample_sheet` accepted.

    One message per compared level without samples (``contrast`` and each of ``contrasts``,
    ``{reference, test}`` on the same column): the comparison of the two arms is then not
    possible, and the DE, composition and GSEA tables say so instead of testing.
    """
    column = contrast["column"]
    values = sheet[column].astype(str) if column in sheet.columns else pd.Series(dtype=str)
    warnings = []
    named = [("contrast", contrast)]
    named += [(f"contrasts[{i}]", c) for i, c in enumerate(contrasts)]
    for key, entry in named:
        for role in ("reference", "test"):
            level = entry[role]
            if not (values == level).any():
                which = "the contrast" if key == "contrast" else f"'{key}'"
                warnings.append(
                    f"no sample has {column} = {level!r} ({which} {role}): the workflow runs, "
                    "but differential expression, composition and GSEA have nothing to compare "
                    "and report 'not tested'."
                )
    return warnings


def is_mtx_url(row: Any) -> bool:
    """Whether a sheet row's ``path`` is the URL of a Matrix Market file (an mtx triplet)."""
    path = str(row["path"])
    if not is_url(path):
        return False
    name = url_file_name(path).lower()
    return name.endswith((".mtx", ".mtx.gz")) or _cell(row, "format") == "10x_mtx"


def url_downloads(row: Any) -> dict[str, tuple[str, str]]:
    """The downloads of a URL row: local file name -> (URL, expected sha256 or "").

    One file, under the URL's own name; an mtx triplet (:func:`is_mtx_url`), its three files
    under the names the mtx reader looks for (``matrix.mtx``, ``features.tsv``,
    ``barcodes.tsv``, each with ``.gz`` where its URL has it), so they land in one folder
    whatever the server calls them. The matrix comes first. Empty for a local path.
    """
    path = str(row["path"])
    if not is_url(path):
        return {}
    if not is_mtx_url(row):
        return {url_file_name(path): (path, _cell(row, "sha256"))}
    out = {}
    for base, url, sha in (
        ("matrix.mtx", path, _cell(row, "sha256")),
        ("features.tsv", _cell(row, "features"), _cell(row, "features_sha256")),
        ("barcodes.tsv", _cell(row, "barcodes"), _cell(row, "barcodes_sha256")),
    ):
        gz = url_file_name(url).lower().endswith(".gz")
        out[base + (".gz" if gz else "")] = (url, sha)
    return out


def check_url_rows(sheet: pd.DataFrame) -> None:
    """Parse-time checks of the sheet's URL rows: a readable file name and a fitting sha256.

    Parameters
    ----------
    sheet
        The sample sheet (columns ``sample`` and ``path``; ``sha256`` and ``format`` optional),
        as :func:`validate_sample_sheet` returns it.

    Raises
    ------
    ConfigError
        A sha256 on a row whose path is not an http(s) URL; a URL without a file name; a URL
        to a Matrix Market file (or with format ``10x_mtx``) without http(s) URLs of its
        barcode and feature lists in the ``barcodes`` and ``features`` columns; those columns
        on any other row; a URL whose format neither its name nor a ``format`` cell tells.
    """
    for _, row in sheet.iterrows():
        sample, path = row["sample"], row["path"]
        sha = str(row.get("sha256", "") or "").strip()
        if sha and not is_url(path):
            raise ConfigError(
                f"sample {sample!r}: a sha256 is given but path {path!r} is not an http(s) "
                "URL; checksums are verified for downloads only. Clear the sha256 cell."
            )
        triplet = [c for c in TRIPLET_URL_COLUMNS if _cell(row, c)]
        if triplet and not is_mtx_url(row):
            raise ConfigError(
                f"sample {sample!r}: column(s) {', '.join(triplet)} are for a Matrix Market "
                f"file given by URL (path ending in .mtx or .mtx.gz), but path {path!r} is "
                "not one. Clear those cells (a local mtx folder brings its own lists)."
            )
        if not is_url(path):
            continue
        name = url_file_name(path)
        fmt = str(row.get("format", "") or "").strip()
        if not name:
            raise ConfigError(
                f"sample {sample!r}: URL {path!r} does not end in a file name. Point it at one "
                f"file (.h5, .h5ad, .csv/.tsv[.gz], a GEO _RAW.tar, or a .mtx[.gz] matrix with "
                "'barcodes' and 'features' URL columns)."
            )
        lowered = name.lower()
        if is_mtx_url(row):
            for column in ("barcodes", "features"):
                url = _cell(row, column)
                if not (is_url(url) and url_file_name(url)):
                    raise ConfigError(
                        f"sample {sample!r}: URL {path!r} is a Matrix Market matrix; column "
                        f"{column!r} must hold the http(s) URL of its {column} list "
                        f"(e.g. ...{column}.tsv.gz), found {url!r}. Add the 'barcodes' and "
                        "'features' columns (and optionally 'barcodes_sha256', "
                        "'features_sha256') to the sample sheet."
                    )
            continue
        if fmt in ("", "auto"):
            if not lowered.removesuffix(".gz").endswith(
                (".h5", ".hdf5", ".h5ad", ".csv", ".tsv", ".txt", ".tar")
            ) and not lowered.endswith(".tgz"):
                raise ConfigError(
                    f"sample {sample!r}: cannot tell the format of {name!r} from its name. "
                    f"Add a 'format' column to the sample sheet ({', '.join(FORMATS)})."
                )
