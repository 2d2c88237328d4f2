"""One log line per scVI training epoch: losses, seconds taken and time left.

A Lightning callback, passed to ``model.train(callbacks=[...])``. It only reads the metrics
the training plan already logs and the wall clock: no random numbers, no change to training.
With a ``progress`` label it also prints a short progress line to stderr, which the rule log
does not capture and Snakemake's terminal shows (``core.setup`` sends logging to the log file
only).
"""

import logging
import math
import sys
import time

from lightning.pytorch.callbacks import Callback

logger = logging.getLogger(__name__)

#: The start of every epoch line (tests and users grep the rule log for it).
PREFIX = "scVI epoch"
#: A progress line on stderr at most every this share of the planned epochs ...
PROGRESS_SHARE = 0.1
#: ... or once this many seconds have passed since the last one, whichever comes first.
PROGRESS_SECONDS = 30.0


class EpochLog(Callback):
    """Log ``scVI epoch k/n: train loss ..., validation loss ..., s, time left`` per epoch.

    Parameters
    ----------
    max_epochs
        Epochs planned (``n``); with early stopping the time left is an upper bound.
    early_stopping
        Whether training may stop before ``max_epochs`` (says "at most" in the estimate).
    log
        Logger to write to (``tmeflow.embed._epoch_log`` by default, which reaches the rule log).
    progress
        Label of a one-line progress on stderr (e.g. the rule's name:
        ``integrate_scvi: epoch 12/60, 14 s left``), written after the first epoch, then at
        most every :data:`PROGRESS_SHARE` of the epochs or every :data:`PROGRESS_SECONDS`,
        and when training ends. ``None`` (default): no progress lines.
    """

    def __init__(
        self,
        max_epochs: int,
        *,
        early_stopping: bool = False,
        log: logging.Logger | None = None,
        progress: str | None = None,
    ):
        super().__init__()
        self.max_epochs = int(max_epochs)
        self.early_stopping = bool(early_stopping)
        self._logger = log or logger
        self.progress = progress
        self.seconds: list[float] = []
        self._start = 0.0
        self._validation: float | None = None
        self._every = max(1, math.ceil(self.max_epochs * PROGRESS_SHARE))
        self._shown_epoch = 0
        self._shown_at = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        """Start the epoch's clock."""
        self._start = time.perf_counter()
        self._validation = None

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        """Keep this epoch's validation loss (none when validation did not run)."""
        if trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get("validation_loss")
        self._validation = None if value is None else float(value)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        """Log the epoch's line (after its validation, which Lightning runs first)."""
        took = time.perf_counter() - self._start
        self.seconds.append(took)
        epoch = trainer.current_epoch + 1
        train = trainer.callback_metrics.get("train_loss")
        parts = [f"train loss {float(train):.2f}" if train is not None else "train loss n/a"]
        if self._validation is not None:
            parts.append(f"validation loss {self._validation:.2f}")
        parts.append(f"{took:.2f} s")
        left = max(self.max_epochs - epoch, 0)
        eta = sum(self.seconds) / len(self.seconds) * left
        at_most = " at most" if self.early_stopping and left else ""
        parts.append(f"about {_duration(eta)} left{at_most}")
        self._logger.info("%s %d/%d: %s", PREFIX, epoch, self.max_epochs, ", ".join(parts))
        self._show(epoch, f"{_duration(eta)} left{at_most}")

    def on_train_end(self, trainer, pl_module) -> None:
        """Say on stderr how many epochs ran and how long they took."""
        epochs = len(self.seconds)
        if self.progress is None or not epochs:
            return
        early = ", stopped early" if epochs < self.max_epochs else ""
        self._print(
            f"epoch {epochs}/{self.max_epochs}, done in {_duration(sum(self.seconds))}{early}"
        )

    def _show(self, epoch: int, left: str) -> None:
        """The stderr progress line, when due (first epoch, every ~10 % or 30 s)."""
        if self.progress is None or epoch >= self.max_epochs:  # the last: on_train_end
            return
        now = time.perf_counter()
        due = (
            self._shown_epoch == 0
            or epoch - self._shown_epoch >= self._every
            or now - self._shown_at >= PROGRESS_SECONDS
        )
        if due:
            self._shown_epoch, self._shown_at = epoch, now
            self._print(f"epoch {epoch}/{self.max_epochs}, {left}")

    def _print(self, text: str) -> None:
        print(f"{self.progress}: {text}", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s`` or ``2 h 7 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
