"""How the confirmatory verdicts hold up across the sensitivity table's settings.

Each hypothesis of ``results/confirmatory.tsv`` gets three columns from
``results/sensitivity.tsv`` (:func:`tmeflow.stats.sensitivity`), so the table that gives a verdict
also says how much it rests on the configured choices:

``n_settings``
    Settings other than the configured one under which the family could be tested again (a
    verdict of :data:`VERDICTS`; ``not recomputable`` and ``not available`` settings are not
    counted).
``share_supported``
    The share of those settings and the configured one whose verdict is ``supported``.
``verdict_changed_by``
    The settings (``<setting> <value>``, ``; ``-separated, in table order) whose verdict differs
    from the configured one: what breaks a supported verdict, or what would make another one
    supported. Empty when none does.
"""

import numpy as np
import pandas as pd

__all__ = ["ROBUSTNESS_COLUMNS", "VERDICTS", "robustness"]

#: The confirmatory verdicts a recomputed setting can give.
VERDICTS = ("supported", "not supported", "inconclusive", "not testable")
#: Columns added to the confirmatory table, in order.
ROBUSTNESS_COLUMNS = ["n_settings", "share_supported", "verdict_changed_by"]
_CONFIGURED = "configured"


def robustness(table: pd.DataFrame, sensitivity: pd.DataFrame) -> pd.DataFrame:
    """``table`` (the confirmatory table) with :data:`ROBUSTNESS_COLUMNS` after ``verdict``.

    Parameters
    ----------
    table
        One row per hypothesis (``hypothesis``, ``verdict``, ...), not modified.
    sensitivity
        ``results/sensitivity.tsv`` (``setting``, ``value``, ``hypothesis``, ``verdict``).
        A hypothesis with no row there gets 0 settings and a missing share; a sensitivity row
        of a hypothesis the table lacks (a table of another family) raises.
    """
    unknown = set(sensitivity["hypothesis"].astype(str)) - set(table["hypothesis"].astype(str))
    if unknown:
        raise ValueError(
            f"the sensitivity table tests hypotheses the confirmatory table lacks: "
            f"{sorted(unknown)[:3]}; re-run confirmatory_sensitivity with the same hypotheses"
        )
    sens = sensitivity.assign(
        _label=sensitivity["setting"].astype(str) + " " + sensitivity["value"].astype(str),
        _verdict=sensitivity["verdict"].astype(str),
    )
    computed = sens["_verdict"].isin(VERDICTS).to_numpy()
    other = (sens["setting"].astype(str) != _CONFIGURED).to_numpy()
    n_settings, share, changed = [], [], []
    for hyp, verdict in zip(table["hypothesis"].astype(str), table["verdict"].astype(str),
                            strict=True):  # fmt: skip
        mine = (sens["hypothesis"].astype(str) == hyp).to_numpy()
        rows = sens[mine & computed & other]
        n_settings.append(len(rows))
        n_supported = int((rows["_verdict"] == "supported").sum()) + (verdict == "supported")
        share.append(n_supported / (len(rows) + 1) if mine.any() else np.nan)
        changed.append("; ".join(rows.loc[rows["_verdict"] != verdict, "_label"]))
    out = table.copy()
    at = list(out.columns).index("verdict") + 1 if "verdict" in out else len(out.columns)
    for offset, (name, values) in enumerate(
        zip(ROBUSTNESS_COLUMNS, (n_settings, share, changed), strict=True)
    ):
        out.insert(at + offset, name, values)
    out["n_settings"] = out["n_settings"].astype("Int64")
    out["share_supported"] = out["share_supported"].astype(float)
    return out
