"""The error every input reader raises: it names the sample, the file and the remedy."""

import os


class InputError(ValueError):
    """An input count file that cannot be used; the message names sample, file and remedy."""


def input_error(
    sample: str | None, path: str | os.PathLike[str], problem: str, fix: str
) -> InputError:
    """An :class:`InputError` worded ``"sample 's1': <problem> in '<path>'. <fix>"``.

    Parameters
    ----------
    sample
        The sample id, or None to leave the ``sample ...:`` prefix out.
    path
        The file (or URL) at fault.
    problem
        What is wrong with it.
    fix
        What the user should do.

    Returns
    -------
    InputError
        The error, to be raised by the caller.
    """
    who = f"sample {sample!r}: " if sample is not None else ""
    return InputError(f"{who}{problem} in {os.fspath(path)!r}. {fix}")
