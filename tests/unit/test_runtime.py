"""Adapters' common set-up: logs go to the rule's log file."""

import logging

import pytest

from tmeflow import runtime


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


def test_setup_logs_to_file_and_captures_warnings(tmp_path, restore_logging):
    path = tmp_path / "rule.log"
    log = runtime.setup(str(path), threads=1)
    log.info("hello %s", "there")
    logging.getLogger("py.warnings").warning("captured")
    for h in logging.getLogger().handlers:
        h.flush()
    text = path.read_text()
    assert "hello there" in text and "captured" in text


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
