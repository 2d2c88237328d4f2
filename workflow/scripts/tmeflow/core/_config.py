"""Parse-time validation of the configuration against its JSON schema.

Called from ``workflow/rules/common.smk`` so that a bad config fails before any job runs, with a
message that names the key and the fix. The sample sheet is checked by
:mod:`tmeflow.inputs` (its formats and files belong to the inputs stage).
"""

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration or sample-sheet problem found before any job runs."""


def load_schema(path: str | Path) -> dict:
    """A schema (or any YAML) file as a dict."""
    with open(path) as fh:
        return yaml.safe_load(fh)


def schema_default(schema_path: str | Path, *keys: str) -> Any:
    """The ``default`` of a nested config key: ``schema_default(p, "export", "cell_ontology")``.

    ``None`` when the key has none.
    """
    node = load_schema(schema_path)
    for key in keys:
        node = node.get("properties", {}).get(key, {})
    return node.get("default")


def _extend_with_default(validator_class):
    """A validator that fills ``default`` values of absent keys (jsonschema FAQ recipe)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema and name not in instance:
                    default = subschema["default"]
                    instance[name] = (
                        dict(default)
                        if isinstance(default, dict)
                        else list(default)
                        if isinstance(default, list)
                        else default
                    )
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _extend_with_default(jsonschema.Draft202012Validator)


def key_path(error: jsonschema.ValidationError) -> str:
    """The dotted path of the key a validation error is about (``<top level>`` for the root)."""
    return ".".join(str(p) for p in error.absolute_path) or "<top level>"


def describe_key(schema: dict, path: Iterable[Any]) -> str:
    """The schema's ``description`` of the key at ``path`` (empty when it has none)."""
    node = schema
    for part in path:
        props = node.get("properties", {})
        if isinstance(part, str) and part in props:
            node = props[part]
        else:
            return ""
    return node.get("description", "")


def _format_error(error: jsonschema.ValidationError, schema: dict, what: str) -> str:
    key = key_path(error)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed))
        return (
            f"{what}: unknown key(s) {extra} under '{key}'. Allowed keys: {allowed}. "
            "Check the spelling (see workflow/schemas/ for every key and its default)."
        )
    desc = describe_key(schema, error.absolute_path)
    hint = f" ({desc.strip()})" if desc else ""
    return f"{what}: key '{key}': {error.message}{hint}"


def schema_errors(
    instance: Any, schema_path: str | Path
) -> tuple[dict, list[jsonschema.ValidationError]]:
    """Validate ``instance`` against a JSON schema (draft 2020-12) file, filling defaults.

    Parameters
    ----------
    instance
        The document (the config, a marker panel); absent keys that have a ``default`` in the
        schema are filled in place.
    schema_path
        The schema YAML file (workflow/schemas/).

    Returns
    -------
    schema, errors
        The schema read and every validation error, sorted by the path of the offending key.
    """
    schema = load_schema(schema_path)
    errors = sorted(_Validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return schema, errors


def validate_config(config: dict, schema_path: str | Path) -> dict:
    """Validate ``config`` in place against the JSON schema, filling defaults.

    Raises
    ------
    ConfigError
        naming the offending key, what is wrong and what the key means.
    """
    schema, errors = schema_errors(config, schema_path)
    if errors:
        msgs = [_format_error(e, schema, "config") for e in errors]
        raise ConfigError("Invalid configuration:\n  " + "\n  ".join(msgs))
    contrast = config["contrast"]
    if contrast["reference"] == contrast["test"]:
        raise ConfigError(
            "config: key 'contrast': reference and test are both "
            f"{contrast['reference']!r}; set two different condition levels."
        )
    return config
