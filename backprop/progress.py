"""ProgressBar: training progress wherever training runs.

Where the output goes decides the display (``live="auto"``)::

    a terminal (stream.isatty())     a live bar over the batches of each epoch (tqdm), and one
    a Jupyter notebook               line per epoch above it; tqdm's ``auto`` flavour draws the
                                     notebook widget when ipywidgets is there
    anything else (a log file, CI)   one plain line per epoch, no carriage returns

Each epoch line reads ``epoch 3/40  loss 0.41  accuracy 0.88  val_loss ...  lr ...  0.12s  ~4s
left``. When an :class:`~backprop.EarlyStopping` callback ends training, the bar says so and
names the epoch whose weights were restored. ``enabled=False`` silences everything.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from .callbacks import Callback


def in_notebook() -> bool:
    """True inside a Jupyter (IPython kernel) session."""
    shell = sys.modules.get("IPython")
    if shell is None or "ipykernel" not in sys.modules:
        return False
    ip = shell.get_ipython() if hasattr(shell, "get_ipython") else None
    return ip is not None and "IPKernelApp" in getattr(ip, "config", {})


class ProgressBar(Callback):
    """Progress of :meth:`Trainer.fit`: a live bar in a terminal or notebook, one line per
    epoch otherwise, and a note when early stopping ends the run.

    Parameters
    ----------
    stream : IO[str] | None, default None
        where to write (default ``sys.stderr``).
    live : bool | str, default 'auto'
        ``"auto"`` (a bar when ``stream`` is a terminal or in a notebook), ``True`` or
        ``False`` (plain lines only).
    enabled : bool, default True
        ``False`` prints nothing at all (``--quiet``).
    force : bool, default False
        kept for compatibility; lines are now printed to any stream.

    """

    def __init__(
        self,
        stream: IO[str] | None = None,
        force: bool = False,
        enabled: bool = True,
        live: bool | str = "auto",
    ) -> None:
        if live not in ("auto", True, False):
            raise ValueError(f"live must be 'auto', True or False, got {live!r}")
        if stream is not None and not callable(getattr(stream, "write", None)):
            # (else a whole epoch trains before the first line fails to be written)
            raise ValueError(
                f"stream must be a text stream with a write method (sys.stdout, a file from "
                f"open(path, 'w')) or None, got {stream!r}"
            )
        self.stream = stream
        self.force = force
        self.enabled = bool(enabled)
        self.live = live
        self._bar: Any = None
        self._start = 0.0

    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr

    def _is_live(self) -> bool:
        if self.live != "auto":
            return bool(self.live)
        out = self._out()
        tty = hasattr(out, "isatty") and out.isatty()
        return tty or (self.stream is None and in_notebook())

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self._out())  # above the bar, which stays at the bottom
        else:
            self._out().write(line + "\n")
            self._out().flush()

    def on_train_begin(self, trainer):
        self._start = time.perf_counter()
        self._bar = None
        if self.enabled and self._is_live():
            from tqdm.auto import tqdm

            self._bar = tqdm(
                total=trainer.steps_per_epoch or None,
                file=self._out() if self.stream is not None else None,
                leave=False,
                unit="batch",
                dynamic_ncols=True,
            )

    def on_epoch_begin(self, trainer, epoch):
        if self._bar is not None:
            self._bar.reset(total=trainer.steps_per_epoch or None)
            self._bar.set_description(f"epoch {epoch + 1}/{trainer.end_epoch}")

    def on_batch_end(self, trainer, batch, logs):
        if self._bar is not None:
            self._bar.update(1)
            if batch % 10 == 0:
                self._bar.set_postfix(loss=f"{logs['loss']:.4f}", refresh=False)

    def on_epoch_end(self, trainer, epoch, logs):
        if not self.enabled:
            return
        done = epoch + 1 - trainer.initial_epoch
        elapsed = time.perf_counter() - self._start
        left = elapsed / max(done, 1) * (trainer.end_epoch - epoch - 1)
        keys = ["loss", *trainer.metric_names]
        keys += [f"val_{k}" for k in keys] + ["lr"]
        parts = [f"{k} {logs[k]:.4g}" for k in keys if k in logs]
        line = f"epoch {epoch + 1}/{trainer.end_epoch}  " + "  ".join(parts)
        line += f"  {logs.get('time', 0.0):.2f}s  ~{left:.0f}s left"
        self._write(line)

    def on_train_end(self, trainer):
        if not self.enabled:
            return
        for note in trainer.notes:  # e.g. EarlyStopping's: why it stopped, what it restored
            self._write(note)
        if self._bar is not None:
            self._bar.close()
            self._bar = None


__all__ = ["ProgressBar", "in_notebook"]
