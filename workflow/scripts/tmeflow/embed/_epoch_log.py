"""One log line per scVI training epoch: losses, seconds taken and time left.

A Lightning callback, passed to ``model.train(callbacks=[...])``. It only reads the metrics
the training plan already logs and the wall clock: no random numbers, no change to training.
"""

import logging
import time

from lightning.pytorch.callbacks import Callback

logger = logging.getLogger(__name__)

#: The start of every epoch line (tests and users grep the rule log for it).
PREFIX = "scVI epoch"


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
    """

    def __init__(
        self, max_epochs: int, *, early_stopping: bool = False, log: logging.Logger | None = None
    ):
        super().__init__()
        self.max_epochs = int(max_epochs)
        self.early_stopping = bool(early_stopping)
        self._logger = log or logger
        self.seconds: list[float] = []
        self._start = 0.0
        self._validation: float | None = None

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
        parts.append(
            f"about {_duration(eta)} left" + (" at most" if self.early_stopping and left else "")
        )
        self._logger.info("%s %d/%d: %s", PREFIX, epoch, self.max_epochs, ", ".join(parts))


def _duration(seconds: float) -> str:
    """``42 s``, ``3 min 5 s`` or ``2 h 7 min``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
