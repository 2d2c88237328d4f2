"""The study's comparisons: the primary ``contrast`` and any further ``contrasts``.

A study may have more than two arms (vehicle / alectinib / alectinib + AXL inhibitor). The
config's ``contrast`` is the primary comparison, whose results keep their paths
(``results/confirmatory.tsv`` ...); each entry of ``contrasts`` (``reference`` vs ``test`` on the
same sample-sheet column) is another, with every statistic, figure and its own confirmatory
family under ``results/contrasts/<name>/`` (:func:`contrast_name`: ``<test>_vs_<reference>``).
Everything upstream of the statistics (QC, integration, clustering, annotation, expression
sources) uses every arm at once.

:func:`study_contrasts` reads and checks them at parse time; :func:`study_arms` lists the arms.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tmeflow.core._config import ConfigError

#: Characters an arm may have to be part of a contrast's folder name.
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


@dataclass(frozen=True)
class Contrast:
    """One comparison: ``test`` vs ``reference`` on the sample-sheet column ``column``."""

    column: str
    reference: str
    test: str

    @property
    def name(self) -> str:
        """The folder of the contrast's results: ``<test>_vs_<reference>``."""
        return contrast_name(self.reference, self.test)

    @property
    def arms(self) -> tuple[str, str]:
        """``(reference, test)``."""
        return (self.reference, self.test)

    def as_config(self) -> dict[str, str]:
        """The config's form: ``{"column", "reference", "test"}``."""
        return {"column": self.column, "reference": self.reference, "test": self.test}


def contrast_name(reference: str, test: str) -> str:
    """``<test>_vs_<reference>``, the folder name of a contrast's results."""
    return f"{test}_vs_{reference}"


def study_contrasts(config: Mapping) -> list[Contrast]:
    """The primary contrast (first) and the further ones of ``config["contrasts"]``.

    Checks, with messages that name the key and the fix (the primary's own two arms are
    checked by :func:`~tmeflow.core.validate_config`): each entry's ``reference`` differs from
    its ``test``; no comparison is listed twice (the primary included, in either direction: the
    reverse would only flip the signs); an arm of a further contrast can be part of a folder
    name (letters, digits, ``.``, ``_``, ``+``, ``-``).

    Parameters
    ----------
    config
        The validated config (``contrast``; ``contrasts`` optional, default none).

    Returns
    -------
    list of Contrast
        The primary contrast first, then the others in the config's order.
    """
    primary = config["contrast"]  # its two arms differ: checked by core.validate_config
    column = str(primary["column"])
    out = [Contrast(column, str(primary["reference"]), str(primary["test"]))]
    seen = {frozenset(out[0].arms): "contrast"}
    for i, entry in enumerate(config.get("contrasts") or []):
        key = f"contrasts[{i}]"
        ref, test = str(entry["reference"]), str(entry["test"])
        if ref == test:
            raise ConfigError(
                f"config key '{key}': reference and test are both {ref!r}; a contrast compares "
                "two different arms"
            )
        for arm in (ref, test):
            if not _SAFE.match(arm):
                raise ConfigError(
                    f"config key '{key}': the arm {arm!r} names the folder of the contrast's "
                    f"results (results/contrasts/{contrast_name(ref, test)}/); rename it in the "
                    "sample sheet with letters, digits, '.', '_', '+' or '-' only"
                )
        pair = frozenset((ref, test))
        if pair in seen:
            raise ConfigError(
                f"config key '{key}': {test!r} vs {ref!r} is already compared by "
                f"'{seen[pair]}' (a reversed contrast only flips the signs); remove the entry"
            )
        seen[pair] = key
        named = [c for c in out if c.name == contrast_name(ref, test)]
        if named:
            raise ConfigError(
                f"config key '{key}': its folder name {contrast_name(ref, test)!r} is also that "
                f"of {named[0].test!r} vs {named[0].reference!r}; rename an arm so that no "
                "arm contains '_vs_'"
            )
        out.append(Contrast(column, ref, test))
    return out


def study_arms(contrasts: Sequence[Contrast]) -> list[str]:
    """Every arm of the study, in order.

    The primary reference and test, then the others as the further contrasts name them
    (reference before test).
    """
    arms: list[str] = []
    for c in contrasts:
        for arm in c.arms:
            if arm not in arms:
                arms.append(arm)
    return arms
