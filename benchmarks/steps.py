"""Speed over many epochs: the time of every 100 updates, from the first to the last.

One epoch on easy data hides what users meet: over several epochs of real MNIST, optimizer state
of weights whose gradient is almost always zero decays into the subnormal range, and every update
slows down for good. This benchmark trains the same network the same way in one process:

    backprop             bp.Trainer + Adam (its optimizers flush near-subnormal state)
    backprop, no flush   the same with ``optimizer.flush_every = 0`` (the behaviour before)
    torch                PyTorch eager on the CPU with its defaults
    torch, FTZ           the same after ``torch.set_flush_denormal(True)`` (flush-to-zero)

Network 784-256-128-10 ReLU, Adam lr 1e-3, real MNIST pixels / 255 (float32), BLAS pinned to
``--threads``. The systems run one after the other by default. ``--turns K`` makes them take
turns instead: each runs in its own Python thread, but only the one holding the turn computes; it
trains ``K`` windows of 100 updates, records how long each took, and hands the turn to the next
(round robin, see :class:`Turns`), so that a change in the machine's load hits every system in
the same stretch of wall time. The price: each switch leaves the previous system's BLAS or
OpenMP worker threads spinning for a while (OpenBLAS spins up to about 0.1 s before sleeping),
which slows the first window of the next turn; small ``K`` makes that visible, and on a quiet
machine the default is the fairer measure. For each batch size it prints the total time of the
complete 100-update windows (the last partial window is not timed), the median time of 100 updates, and
the slowest 100-update window against the median; it draws the time of every 100 updates over
training (``--plot``). ``--scaling`` adds a thread-scaling table (one epoch, batch 128).

    python benchmarks/steps.py --epochs 5 --batch 32 128 --plot benchmarks/steps.png
    python benchmarks/steps.py --rows 6000 --epochs 2            # a quick look

This machine is shared: absolute times move with the load; same-run ratios are what counts.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
from threadpoolctl import threadpool_limits

SIZES = (784, 256, 128, 10)
WINDOW = 100


def load(rows: int | None, data_dir: str) -> tuple[np.ndarray, np.ndarray]:
    from backprop.app.datasets import load_mnist

    X, y, _, _ = load_mnist(Path(data_dir) / "mnist.npz")
    X = (np.asarray(X, np.float32) / np.float32(255)).reshape(len(X), -1)
    if rows:
        X, y = X[:rows], y[:rows]
    return X, np.asarray(y, np.int64)


class Turns:
    """Round-robin turns between systems that train in threads: exactly one computes at a time.

    A system calls ``start(name)`` before its first update, ``tick(name)`` after every
    ``WINDOW`` updates (which records the time of that window and, every ``every`` windows, hands
    the turn on), and ``stop(name)`` when it is done (in a ``finally``, so that the others never
    wait for it; :func:`in_turns` also stops a system that failed before its first turn).
    ``Turns(None)`` is a no-op clock for warm-ups and tests: ``tick`` only records the time.
    """

    def __init__(
        self, names: list[str] | None, every: int | None = 1, timeout: float | None = None
    ) -> None:
        self.order = list(names or [])
        self.every = every  # windows per turn; None: a system keeps the turn until it stops
        self.timeout = timeout  # seconds to wait for a turn before giving up (None: forever)
        self.cond = threading.Condition()
        self.current = 0
        self.done: set[str] = set()
        self.windows: dict[str, list[float]] = {}
        self.t0: dict[str, float] = {}

    def _wait(self, name: str) -> None:
        if self.order:
            with self.cond:
                if not self.cond.wait_for(
                    lambda: self.order[self.current] == name, timeout=self.timeout
                ):
                    raise TimeoutError(f"{name} waited {self.timeout} s for its turn")
        self.t0[name] = time.perf_counter()

    def _pass(self, name: str, finished: bool = False) -> None:
        if not self.order:
            return
        with self.cond:
            if finished:
                self.done.add(name)
            holder = self.order[self.current]
            if holder != name and holder not in self.done:
                return  # a system that ends out of turn (it failed early) takes no one's turn
            for k in range(1, len(self.order) + 1):  # the next system not yet done
                i = (self.current + k) % len(self.order)
                if self.order[i] not in self.done:
                    self.current = i
                    break
            self.cond.notify_all()

    def start(self, name: str) -> None:
        self.windows[name] = []
        self._wait(name)

    def tick(self, name: str) -> None:
        self.windows[name].append(time.perf_counter() - self.t0[name])
        if self.every and len(self.windows[name]) % self.every == 0:
            self._pass(name)
            self._wait(name)
        else:
            self.t0[name] = time.perf_counter()

    def stop(self, name: str) -> None:
        self._pass(name, finished=True)

    def times(self, name: str) -> np.ndarray:
        """Seconds of each complete window of ``WINDOW`` updates of ``name``."""
        return np.asarray(self.windows.get(name, []))


def run_backprop(
    X, y, batch, epochs, flush: bool, turns: Turns | None = None, name: str = "backprop"
) -> np.ndarray:
    import backprop as bp

    layers: list = []
    for a, b in zip(SIZES[:-1], SIZES[1:], strict=True):
        layers += [bp.Dense(a, b), bp.ReLU()]
    model = bp.Sequential(layers[:-1], seed=0)
    opt = bp.Adam(1e-3)
    if not flush:
        opt.flush_every = 0
    turns = turns or Turns(None)

    class Stamp(bp.Callback):
        def on_batch_end(self, trainer, b, logs):
            if trainer.step % WINDOW == 0:
                turns.tick(name)

    trainer = bp.Trainer(
        model, "cross_entropy", opt, batch_size=batch, epochs=epochs, seed=0, callbacks=[Stamp()]
    )
    turns.start(name)
    try:
        trainer.fit(X, y)
    finally:
        turns.stop(name)
    return turns.times(name)


def run_torch(
    X, y, batch, epochs, ftz: bool, turns: Turns | None = None, name: str = "torch"
) -> np.ndarray:
    import torch

    turns = turns or Turns(None)
    torch.manual_seed(0)
    mods: list = []
    for a, b in zip(SIZES[:-1], SIZES[1:], strict=True):
        mods += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    net = torch.nn.Sequential(*mods[:-1])
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    step = 0
    turns.start(name)
    torch.set_flush_denormal(ftz)
    try:
        for _ in range(epochs):
            order = torch.randperm(len(Xt), generator=gen)
            for start in range(0, len(Xt), batch):
                idx = order[start : start + batch]
                opt.zero_grad()
                loss = loss_fn(net(Xt[idx]), yt[idx])
                loss.backward()
                opt.step()
                step += 1
                if step % WINDOW == 0:
                    turns.tick(name)
                    torch.set_flush_denormal(ftz)  # in case the flag is per process, not thread
    finally:
        torch.set_flush_denormal(False)
        turns.stop(name)
    return turns.times(name)


def systems(torch_ok: bool) -> dict:
    """name -> ``fn(X, y, batch, epochs, turns=None, name=...)`` returning the window times."""
    out = {
        "backprop": functools.partial(run_backprop, flush=True),
        "backprop, no flush": functools.partial(run_backprop, flush=False),
    }
    if torch_ok:
        out["torch"] = functools.partial(run_torch, ftz=False)
        out["torch, FTZ"] = functools.partial(run_torch, ftz=True)
    return out


def in_turns(
    fns: dict, X, y, batch: int, epochs: int, every: int | None = 1, timeout: float | None = None
) -> dict[str, np.ndarray]:
    """Train every system of ``fns`` in its own thread, taking turns of ``every`` windows of
    ``WINDOW`` updates (None: each trains to the end before the next starts); returns each
    one's window times. An error in one system is raised after all have ended."""
    turns = Turns(list(fns), every, timeout)
    errors: list[BaseException] = []

    def work(name, fn):
        try:
            fn(X, y, batch, epochs, turns=turns, name=name)
        except BaseException as exc:  # re-raised in the main thread below
            errors.append(exc)
            turns.stop(name)  # in case it failed before its first turn

    threads = [threading.Thread(target=work, args=item) for item in fns.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return {name: turns.times(name) for name in fns}


def summarize(times: np.ndarray, epochs: int) -> dict:
    """Totals of the window times; ``last_epoch_over_first`` is the median window of the last
    epoch over that of the first (an epoch is ``len(times) // epochs`` windows)."""
    med = float(np.median(times))
    per_epoch = max(1, len(times) // epochs)
    return {
        "total": float(times.sum()),
        "median_100": med,
        "slowest_over_median": float(times.max() / med),
        "last_epoch_over_first": float(
            np.median(times[-per_epoch:]) / np.median(times[:per_epoch])
        ),
    }


def epoch_seconds(times: np.ndarray, n_rows: int, batch: int) -> float:
    """Seconds of one epoch from its window times: only complete windows of ``WINDOW`` updates
    are timed (4 of an epoch's 469 at batch 128 on MNIST), so their mean per update is scaled
    to the epoch's ``ceil(n_rows / batch)`` updates."""
    if len(times) == 0:
        return float("nan")
    return float(times.sum()) / (len(times) * WINDOW) * math.ceil(n_rows / batch)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rows", type=int, default=None, help="use the first ROWS training images")
    p.add_argument("--data", default="data", help="folder holding mnist.npz")
    p.add_argument("--plot", help="write the time-per-100-updates figure here (PNG)")
    p.add_argument("--scaling", action="store_true", help="add the thread-scaling table")
    p.add_argument(
        "--turns",
        type=int,
        default=None,
        metavar="K",
        help="alternate the systems every K windows of 100 updates (default: one after another)",
    )
    args = p.parse_args(argv)
    if args.turns is not None and args.turns < 1:
        p.error(f"--turns must be >= 1, got {args.turns}")
    try:
        import torch

        torch.set_num_threads(args.threads)
        torch_ok = True
    except ImportError:
        print("torch is not installed: backprop only (pip install torch==2.13.0)")
        torch_ok = False
    X, y = load(args.rows, args.data)
    runs: dict[tuple[str, int], np.ndarray] = {}
    with threadpool_limits(limits=args.threads):
        for batch in args.batch:
            fns = systems(torch_ok)
            for fn in fns.values():
                fn(X[: 20 * batch], y[: 20 * batch], batch, 1)  # warm-up
            for name, t in in_turns(fns, X, y, batch, args.epochs, args.turns).items():
                runs[(name, batch)] = t
    order = f"in turns of {args.turns} windows" if args.turns else "one after another"
    print(
        f"MNIST {len(X)} rows, {args.epochs} epochs, {args.threads} threads, Adam, "
        f"784-256-128-10, systems {order}"
    )
    print(
        "| system | batch | total s | median ms / 100 updates | slowest / median | last / first |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for (name, batch), t in runs.items():
        if len(t) == 0:
            print(f"| {name} | {batch} | - | fewer than {WINDOW} updates: no window | - | - |")
            continue
        s = summarize(t, args.epochs)
        print(
            f"| {name} | {batch} | {s['total']:.2f} | {1e3 * s['median_100']:.1f} | "
            f"{s['slowest_over_median']:.2f} | {s['last_epoch_over_first']:.2f} |"
        )
    for batch in args.batch:
        if torch_ok:
            for peer in ("torch", "torch, FTZ"):
                ratio = runs[("backprop", batch)].sum() / runs[(peer, batch)].sum()
                print(f"batch {batch}: backprop / {peer} = {ratio:.2f}")
    if args.scaling:
        print("\nthread scaling, one epoch, batch 128 (seconds; its full 100-update windows")
        print(f"timed, scaled to the epoch's {math.ceil(len(X) / 128)} updates)")
        counts = sorted({1, 2, args.threads, os.cpu_count() or 1})  # and all cores
        print("| system | " + " | ".join(f"{c} threads" for c in counts) + " |")
        print("|---" * (len(counts) + 1) + "|")
        for name, fn in systems(torch_ok).items():
            if "no flush" in name:
                continue
            cells = []
            for c in counts:
                with threadpool_limits(limits=c):
                    if torch_ok:
                        torch.set_num_threads(c)
                    cells.append(epoch_seconds(fn(X, y, 128, 1), len(X), 128))
            print(f"| {name} | " + " | ".join(f"{v:.2f}" for v in cells) + " |")
    if args.plot:
        plot(runs, args, Path(args.plot))
    return 0


def plot(runs, args, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(args.batch), figsize=(6.5 * len(args.batch), 4.2))
    axes = np.atleast_1d(axes)
    for ax, batch in zip(axes, args.batch, strict=True):
        for name in dict.fromkeys(n for n, _ in runs):
            t = runs[(name, batch)]
            ax.plot(np.arange(1, len(t) + 1) * WINDOW, 1e3 * t, lw=1, label=name)
        ax.set_title(f"batch {batch}: time of every {WINDOW} updates ({args.epochs} epochs)")
        ax.set_xlabel("update")
        ax.set_ylabel(f"ms per {WINDOW} updates")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    print(f"figure: {path}")


if __name__ == "__main__":
    sys.exit(main())
