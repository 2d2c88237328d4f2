"""Adapters' common set-up: logs go to the rule's log file."""

import logging
import sys

import pytest

from tmeflow.core import _runtime as runtime


@pytest.fixture()
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    logging.captureWarnings(False)
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    for h in handlers:
        root.addHandler(h)
    root.setLevel(level)
    sys.excepthook = sys.__excepthook__


def test_setup_logs_to_file_and_captures_warnings(tmp_path, restore_logging):
    path = tmp_path / "rule.log"
    log = runtime.setup(str(path), threads=1)
    log.info("hello %s", "there")
    logging.getLogger("py.warnings").warning("captured")
    for h in logging.getLogger().handlers:
        h.flush()
    text = path.read_text()
    assert "hello there" in text and "captured" in text


def test_setup_logs_uncaught_errors_and_quiets_font_subsetting(tmp_path, restore_logging):
    path = tmp_path / "rule.log"
    runtime.setup(str(path), threads=1)
    runtime.setup(str(path), threads=1)  # a second set-up does not chain the hook twice
    logging.getLogger("fontTools.subset").info("Glyph IDs: [0, 1, 2]")
    try:
        raise ValueError("bad column in obs")
    except ValueError as err:
        sys.excepthook(type(err), err, err.__traceback__)
    for h in logging.getLogger().handlers:
        h.flush()
    text = path.read_text()
    assert text.count("ValueError: bad column in obs") == 1 and "Traceback" in text
    assert "Glyph IDs" not in text


def test_pin_threads_limits_numba_and_blas():
    import numba
    from threadpoolctl import threadpool_info

    before = numba.get_num_threads()
    try:
        runtime.pin_threads(1)
        assert numba.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    finally:
        numba.set_num_threads(before)


def test_blas_stays_single_threaded_whatever_the_rules_threads():
    import numba
    from threadpoolctl import threadpool_info

    before = numba.get_num_threads()
    try:
        runtime.pin_threads(2)
        assert numba.get_num_threads() == min(2, numba.config.NUMBA_NUM_THREADS)
        blas = [pool for pool in threadpool_info() if pool["user_api"] == "blas"]
        assert blas and all(pool["num_threads"] == runtime.BLAS_THREADS == 1 for pool in blas)
    finally:
        numba.set_num_threads(before)
        runtime.pin_threads(1)
