"""EpochLog's progress line on stderr (the terminal that runs Snakemake), with a fake trainer.

The rule log's per-epoch lines are tested through real training in test_integrate.py.
"""

import logging
from types import SimpleNamespace

import pytest

from tmeflow.embed import _epoch_log
from tmeflow.embed._epoch_log import EpochLog


class Clock:
    """``time.perf_counter`` stand-in: each epoch takes ``step`` seconds."""

    def __init__(self, step: float):
        self.now, self.step = 0.0, step

    def __call__(self) -> float:
        return self.now


def _train(callback: EpochLog, clock: Clock, epochs: int) -> None:
    """Drive the callback through ``epochs`` epochs as Lightning would (no validation)."""
    trainer = SimpleNamespace(current_epoch=0, callback_metrics={}, sanity_checking=False)
    for k in range(epochs):
        trainer.current_epoch = k
        trainer.callback_metrics = {"train_loss": 100.0 - k}
        callback.on_train_epoch_start(trainer, None)
        clock.now += clock.step
        callback.on_train_epoch_end(trainer, None)
    callback.on_train_end(trainer, None)


@pytest.fixture
def clock(monkeypatch):
    def make(step: float) -> Clock:
        fake = Clock(step)
        monkeypatch.setattr(_epoch_log.time, "perf_counter", fake)
        return fake

    return make


def test_progress_every_tenth_of_the_epochs_on_stderr_not_in_the_log(clock, capfd, caplog):
    with caplog.at_level(logging.INFO, logger="tmeflow"):
        _train(EpochLog(60, progress="integrate_scvi"), clock(0.5), 60)
    out, err = capfd.readouterr()
    assert out == ""
    lines = err.splitlines()
    # after the first epoch, then every 6 epochs (10 % of 60), then the end
    assert lines[0] == "integrate_scvi: epoch 1/60, 30 s left"
    assert lines[1] == "integrate_scvi: epoch 7/60, 26 s left"
    assert [line.split(",")[0] for line in lines] == [
        f"integrate_scvi: epoch {k}/60" for k in (1, 7, 13, 19, 25, 31, 37, 43, 49, 55, 60)
    ]
    assert lines[-1] == "integrate_scvi: epoch 60/60, done in 30 s"
    # the rule log keeps one line per epoch, and no progress line
    messages = [r.getMessage() for r in caplog.records]
    assert len([m for m in messages if m.startswith("scVI epoch")]) == 60
    assert not any("integrate_scvi" in m for m in messages)


def test_slow_epochs_show_progress_every_30_seconds(clock, capfd):
    _train(EpochLog(60, progress="integrate_scvi"), clock(16.0), 8)
    lines = capfd.readouterr().err.splitlines()
    # 16 s per epoch: a line once 30 s have passed (every 2 epochs), before 10 % (6 epochs)
    assert [line.split(",")[0] for line in lines] == [
        f"integrate_scvi: epoch {k}/60" for k in (1, 3, 5, 7, 8)
    ]
    assert lines[0] == "integrate_scvi: epoch 1/60, 15 min 44 s left"
    assert lines[-1] == "integrate_scvi: epoch 8/60, done in 2 min 8 s, stopped early"


def test_few_epochs_and_early_stopping(clock, capfd):
    _train(EpochLog(4, early_stopping=True, progress="scvi"), clock(1.0), 4)
    assert capfd.readouterr().err.splitlines() == [
        "scvi: epoch 1/4, 3 s left at most",
        "scvi: epoch 2/4, 2 s left at most",
        "scvi: epoch 3/4, 1 s left at most",
        "scvi: epoch 4/4, done in 4 s",
    ]


def test_no_progress_label_no_stderr(clock, capfd):
    _train(EpochLog(10), clock(40.0), 10)
    assert capfd.readouterr().err == ""
