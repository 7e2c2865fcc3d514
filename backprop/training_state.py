"""TrainerState: what a Trainer saves for a checkpoint and takes back to resume.

``state_dict()`` holds plain values and NumPy arrays: epoch and update counts, the shuffle and
split generator states, the validation split drawn, the optimizer's and the schedule's state,
every callback's ``state_dict`` (with its type name, in order), and the history.
``load_state_dict`` restores them; each callback gets its state back right after its
``on_train_begin`` in the next ``fit`` (which may reset it for a fresh run), or at once through
``restore_callbacks()``. Saved states are matched to callbacks by type and order
(:func:`~backprop.training_checks.match_callback_states`), so a stateless callback may be added
or dropped between save and load, but saved state that nothing takes is an error.
"""

from __future__ import annotations

import copy
from typing import Any

from . import checks
from .training_checks import match_callback_states


class TrainerState:
    """Mixin of :class:`~backprop.Trainer`: its checkpoint state (see the module docstring)."""

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs besides the model's weights: epoch and update counts,
        both random streams, the validation split, optimizer and schedule state, every
        callback's state (in order), and the history (copies). Values are numbers, strings,
        lists, dicts and NumPy arrays.

        Returns
        -------
        dict[str, Any]
            JSON values and arrays, as :func:`save_checkpoint` writes them.
        """
        stepped = self._stepped_schedule()
        return {
            "epoch": self.epoch,
            "step_count": self.step_count,
            "shuffle_rng": copy.deepcopy(self.shuffle_rng.bit_generator.state),
            "split_rng": copy.deepcopy(self.validation_rows.rng.bit_generator.state),
            "validation_split": self.validation_rows.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": None if stepped is None else stepped.state_dict(),
            "callbacks": [
                {"type": type(cb).__name__, "state": cb.state_dict()} for cb in self._hooks()[:-1]
            ],
            "history": {k: list(v) for k, v in self.history.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; the next ``fit`` continues the run. The
        callbacks get their state right after their ``on_train_begin`` in that fit (which may
        reset them for a fresh run), or at once through :meth:`restore_callbacks`."""
        epoch = checks.non_negative_int("epoch", state["epoch"])
        step_count = checks.non_negative_int("step_count", state["step_count"])
        for key in ("shuffle_rng", "split_rng"):  # refused here, before anything changes
            copy.deepcopy(self.shuffle_rng).bit_generator.state = state[key]
        for key, owner in (("optimizer", self.optimizer), ("schedule", self._stepped_schedule())):
            saved = state.get(key)
            name = type(owner).__name__
            if owner is not None and isinstance(saved, dict) and saved.get("type", name) != name:
                raise ValueError(f"the saved {key} state is {saved['type']}'s, this one is {name}")
        for key, owner in (("optimizer", self.optimizer), ("schedule", self._stepped_schedule())):
            if owner is not None and state.get(key) is not None:  # their own loaders' refusals,
                copy.deepcopy(owner).load_state_dict(state[key])  # on a copy: nothing changes
        pairs = match_callback_states(self._hooks()[:-1], state.get("callbacks", []))
        for cb, saved in pairs:  # their loaders' refusals now, on copies, not at the next fit
            copy.copy(cb).load_state_dict(saved)
        history = state["history"]
        if not isinstance(history, dict) or not all(isinstance(v, list) for v in history.values()):
            raise ValueError("the saved history must map names to lists")
        self.validation_rows.load_state_dict(state.get("validation_split"))  # checks first
        self.epoch, self.step_count = epoch, step_count
        self._unfinished = None  # at the end of a saved epoch now
        self.shuffle_rng.bit_generator.state = state["shuffle_rng"]
        self.validation_rows.rng.bit_generator.state = state["split_rng"]
        self.optimizer.load_state_dict(state["optimizer"])
        stepped = self._stepped_schedule()
        if stepped is not None and state.get("schedule") is not None:
            stepped.load_state_dict(state["schedule"])
        self._pending_callback_states = pairs
        self.history.clear()
        self.history.update({k: list(v) for k, v in state["history"].items()})

    def _rebase_lr(self, lr: float) -> float | None:
        """Make ``lr`` the base rate of a run just loaded from a checkpoint (the command line's
        ``--resume --set optimizer.lr=...``), which the optimizer's saved rate and a schedule's
        or plateau's saved ``base_lr`` would otherwise override. A schedule keeps its position
        and a plateau its reductions: the rate becomes ``schedule(t)`` from the new base, or
        ``max(lr * scale, min_lr)``. Returns the base rate replaced, or None if it was ``lr``."""
        from .schedules import ReduceLROnPlateau

        lr = checks.positive("lr", lr)
        pending = self._pending_callback_states or []
        plateau = next(
            (i for i, (cb, st) in enumerate(pending) if isinstance(cb, ReduceLROnPlateau)), None
        )
        stepped = self._stepped_schedule()
        if stepped is not None and stepped.base_lr is not None:
            old, stepped.base_lr = stepped.base_lr, lr  # (it sets the optimizer's rate)
        elif plateau is not None and pending[plateau][1].get("base_lr") is not None:
            cb, state = pending[plateau]
            old = float(state["base_lr"])
            pending[plateau] = (cb, {**state, "base_lr": lr})  # given to it when fit begins
            self.optimizer.lr = max(lr * float(state["scale"]), cb.min_lr)
        else:
            old, self.optimizer.lr = self.optimizer.lr, lr
        return None if old == lr else old

    def restore_callbacks(self) -> None:
        """Give the callbacks the state loaded by :meth:`load_state_dict` now (a finished run
        that is not fitted again, say)."""
        self._apply_pending_callback_states()

    def _apply_pending_callback_states(self) -> None:
        saved, self._pending_callback_states = self._pending_callback_states, None
        for cb, state in saved or []:
            cb.load_state_dict(state)
