"""tmeflow: the tumour micro-environment workflow's library.

Every Snakemake ``script:`` adapter under ``workflow/scripts/`` is a thin wrapper around a
function of this package; the tests import the package directly.
"""

__version__ = "0.2.0"
