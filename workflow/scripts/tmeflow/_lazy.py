"""Lazy re-export of a stage's public names from its private modules (SPEC 1's ``attach``).

A stage package (``tmeflow.stats``, ``tmeflow.embed``, ...) names its public functions in one
table, module -> names, and a name's module is imported on first use. An adapter that needs
one statistic does not import scanpy for the stage's clustering-based sensitivity, so each
job's imports (time and memory) stay what its own work needs.
"""

import importlib
from collections.abc import Callable, Mapping, Sequence


def attach(
    package: str, names_by_module: Mapping[str, Sequence[str]]
) -> tuple[Callable[[str], object], Callable[[], list[str]], list[str]]:
    """The package's ``__getattr__``, ``__dir__`` and ``__all__`` for its table of names.

    Parameters
    ----------
    package
        The package's ``__name__``.
    names_by_module
        Private module (relative, e.g. ``"_de"``) -> the public names it defines.

    Returns
    -------
    getattr_, dir_, all_
        To assign to ``__getattr__``, ``__dir__`` and ``__all__`` in the package.

    Raises
    ------
    ValueError
        If two modules export the same name.
    """
    module_of: dict[str, str] = {}
    for module, names in names_by_module.items():
        for name in names:
            if name in module_of:
                msg = f"{package}: {name!r} is exported by both {module_of[name]} and {module}"
                raise ValueError(msg)
            module_of[name] = module

    def getattr_(name: str) -> object:
        if name not in module_of:
            msg = f"module {package!r} has no attribute {name!r}"
            raise AttributeError(msg)
        return getattr(importlib.import_module(f"{package}.{module_of[name]}"), name)

    def dir_() -> list[str]:
        return sorted(module_of)

    return getattr_, dir_, sorted(module_of)
