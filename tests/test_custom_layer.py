"""A user's parametric layer, registered once, is first-class (issue 12, section 3).

``Gated`` is defined here, in the test file, as a user would: it trains, passes check_gradients,
saves and loads bitwise, checkpoints and resumes, shows in summary() and can be named in a TOML
config, with no edit anywhere else.
"""

import numpy as np
import pytest
from scipy import special

import backprop as bp
from backprop.app import config as cfg
from backprop.checkpoint import load_checkpoint, save_checkpoint


@bp.register_layer
class Gated(bp.Layer):
    """``y = (x @ W) * sigmoid(x @ V) + b`` on the last axis, ``units`` outputs."""

    def __init__(self, units: int, gate_bias: float = 0.0) -> None:
        super().__init__()
        self.units = units
        self.gate_bias = gate_bias
        self._cache = None

    def build(self, in_shape):
        self.d = in_shape[-1]
        return (*in_shape[:-1], self.units)

    def param_specs(self):
        return {
            "W": ((self.d, self.units), "weight"),
            "V": ((self.d, self.units), "weight"),
            "b": ((self.units,), "other"),
        }

    def reset_parameters(self, rng):
        scale = 1 / np.sqrt(self.d)
        self.params["W"][...] = rng.normal(scale=scale, size=(self.d, self.units))
        self.params["V"][...] = rng.normal(scale=scale, size=(self.d, self.units))
        self.params["b"][...] = 0

    def forward(self, x, training=False):
        a = x @ self.params["W"]
        s = special.expit(x @ self.params["V"] + self.gate_bias)
        if training:
            self._cache = (x, a, s)
        return a * s + self.params["b"]

    def backward(self, grad_out):
        x, a, s = self._cache
        da, dz = grad_out * s, grad_out * a * s * (1 - s)
        self.grads["W"][...] = x.T @ da
        self.grads["V"][...] = x.T @ dz
        self.grads["b"][...] = grad_out.sum(axis=0)
        return da @ self.params["W"].T + dz @ self.params["V"].T

    def config(self):
        return {"units": self.units, "gate_bias": self.gate_bias}


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64) + (X[:, 2] > 0.5)
    return X, y


def _model(seed=0):
    return bp.Sequential(
        [Gated(8, gate_bias=0.5), bp.Tanh(), bp.Dropout(0.1), bp.Dense(3)], seed=seed
    )


def test_it_passes_the_gradient_check(rng):
    model = bp.Sequential(
        [Gated(4), bp.Residual([Gated(4)]), bp.Dense(2)], input_shape=(3,), dtype="float64"
    )
    report = bp.check_gradients(
        model, bp.MeanSquaredError(), rng.normal(size=(6, 3)), np.ones((6, 2)), l1=0.01
    )
    assert report.passed, str(report)
    assert {"0.W", "0.V", "1.0.V"} <= {c.name for c in report.checks}
    assert model.n_weights == 3 * 4 * 2 + 4 * 4 * 2 + 4 * 2  # W and V are penalized weights


def test_it_trains():
    X, y = _data()
    model = _model()
    trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.02), batch_size=16, epochs=25, seed=0)
    history = trainer.fit(X, y)
    assert history["loss"][-1] < 0.6 * history["loss"][0]
    assert history["accuracy"][-1] > 0.8


def test_it_saves_and_loads_bitwise(tmp_path):
    X, _ = _data()
    model = _model()
    model.build((5,))
    bp.save(model, tmp_path / "g.npz")
    back = bp.load(tmp_path / "g.npz")
    assert isinstance(back.layers[0], Gated) and back.layers[0].gate_bias == 0.5
    assert np.array_equal(back.flat_parameters, model.flat_parameters)
    assert np.array_equal(back.predict(X), model.predict(X))


def test_it_checkpoints_and_resumes_bitwise(tmp_path):
    X, y = _data()

    def run(epochs, resume=None):
        model = _model(seed=1)
        trainer = bp.Trainer(model, "cross_entropy", bp.Adam(0.01), batch_size=32, seed=3)
        if resume is not None:
            load_checkpoint(resume, trainer)  # builds the model from the file's input shape
            assert model.in_shape == (5,)
        trainer.fit(X, y, epochs=epochs)
        return model, trainer

    straight, _ = run(4)
    _, half = run(2)
    save_checkpoint(tmp_path / "c.npz", half)
    resumed, _ = run(2, resume=tmp_path / "c.npz")
    assert np.array_equal(straight.flat_parameters, resumed.flat_parameters)


def test_a_layer_its_config_cannot_rebuild_is_refused_when_saving(tmp_path):
    """A layer whose config() left out a required argument saved without a word, and the file
    could never be loaded ("Mul.__init__() missing 1 required positional argument")."""

    @bp.register_layer
    class Mul(bp.Layer):
        def __init__(self, k: float) -> None:
            super().__init__()
            self.k = k

        def forward(self, x, training=False):
            return x * self.k

    try:
        model = bp.Sequential([bp.Dense(2, 2), Mul(3.0)], seed=0)
        with pytest.raises(TypeError, match=r"layer 1 \(Mul\) cannot be rebuilt from its config"):
            bp.save(model, tmp_path / "m.npz")
        assert not (tmp_path / "m.npz").exists()
    finally:
        bp.layers.REGISTRY.pop("Mul")


@bp.register_layer
class Offsets(bp.Layer):
    """``y = x + offsets[0]``: a setting that is a tuple, which JSON gives back as a list."""

    def __init__(self, offsets: tuple = (0.0, 1.0)) -> None:
        super().__init__()
        self.offsets = offsets

    def forward(self, x, training=False):
        return x + self.offsets[0]

    def backward(self, grad_out):
        return grad_out

    def config(self):
        return {"offsets": self.offsets}


def test_a_tuple_setting_does_not_stop_its_checkpoint_from_resuming(tmp_path):
    """The checkpoint's model (JSON: lists) was compared with the live config (tuples): a
    layer with a tuple setting could never resume ("the checkpoint's model differs")."""

    def trainer():
        model = bp.Sequential([bp.Dense(3, 2), Offsets((0.5, 2.0))], seed=0)
        return bp.Trainer(model, "mse", bp.SGD(0.1), batch_size=4, seed=0)

    X = np.ones((8, 3))
    run = trainer()
    run.fit(X, np.zeros((8, 2)), epochs=1)
    save_checkpoint(tmp_path / "c.npz", run)
    resumed = trainer()
    load_checkpoint(tmp_path / "c.npz", resumed)
    assert resumed.epoch == 1
    assert np.array_equal(resumed.model.flat_parameters, run.model.flat_parameters)
    other = bp.Trainer(
        bp.Sequential([bp.Dense(3, 2), Offsets((0.5, 3.0))], seed=0), "mse", bp.SGD(0.1)
    )
    with pytest.raises(
        bp.ModelFileError, match=r"layer 1 is .*Offsets.*\[0.5, 2.0\].* in the checkpoint, .*3.0"
    ):
        load_checkpoint(tmp_path / "c.npz", other)  # a real difference is named


def test_it_shows_in_the_summary():
    model = _model()
    model.build((5,))
    line = model.summary().splitlines()[2]
    # 5*8 (W) + 5*8 (V) + 8 (b) = 88 parameters
    # the short name first, its settings in the last column
    assert line.split()[1] == "Gated" and line.endswith("units=8, gate_bias=0.5")
    assert "(None, 8)" in line and " 88 " in line


def test_it_can_be_named_in_a_toml_config(tmp_path):
    path = tmp_path / "gated.toml"
    path.write_text(
        '[[model.layers]]\ntype = "Gated"\nunits = 6\ngate_bias = 1\n\n'
        '[[model.layers]]\ntype = "Dense"\n'
    )
    config = bp.load_config(path)
    model = cfg.build_model(config, n_features=5, n_outputs=2)
    assert model.parameters()["0.V"].shape == (5, 6) and model.out_shape == (2,)
    assert model.layers[0].gate_bias == 1.0 and isinstance(model.layers[0].gate_bias, float)
    path.write_text('[[model.layers]]\ntype = "Gated"\nunits = "six"\n')
    with pytest.raises(bp.ConfigError, match="layer 0 units: expected an integer, got 'six'"):
        bp.load_config(path)
    path.write_text('[[model.layers]]\ntype = "Gated"\nunit = 6\n')
    with pytest.raises(bp.ConfigError, match="allowed keys: type, units, gate_bias, trainable"):
        bp.load_config(path)


def test_registration_is_checked_and_an_unregistered_layer_cannot_be_saved(tmp_path):
    class Stray(bp.Layer):
        def forward(self, x, training=False):
            return x

    with pytest.raises(TypeError, match="register_layer"):
        bp.save(bp.Sequential([Stray()], input_shape=(2,)), tmp_path / "s.npz")
    with pytest.raises(TypeError, match="subclass of backprop.Layer"):
        bp.register_layer(int)

    class Dense(bp.Layer):  # a name clash with a built-in layer
        pass

    with pytest.raises(ValueError, match="'Dense' is already registered"):
        bp.register_layer(Dense)
    assert bp.layers.get("Dense") is bp.Dense


def test_a_config_value_json_cannot_hold_is_named_when_saving(tmp_path):
    """A NumPy scalar in ``config()`` failed deep in json.dumps with "Object of type float32
    is not JSON serializable", naming neither the layer nor the setting."""

    @bp.register_layer
    class NumpyScaled(bp.Layer):
        def __init__(self, scale: float = 1.0) -> None:
            super().__init__()
            self.scale = scale

        def forward(self, x, training=False):
            return x * self.scale

        def config(self):
            return {"scale": self.scale}

    try:
        model = bp.Sequential([bp.Dense(2, 2), NumpyScaled(np.float32(0.5))], seed=0)
        with pytest.raises(
            TypeError, match=r"layer 1 \(NumpyScaled\): config\(\)\['scale'\] .* of type float32"
        ):
            bp.save(model, tmp_path / "m.npz")
        assert not (tmp_path / "m.npz").exists()
    finally:
        bp.layers.REGISTRY.pop("NumpyScaled")


def test_poisson_loss_is_exported():
    loss = bp.Poisson()
    z = np.array([[0.0], [1.0]])
    value = loss.forward(z, np.array([[1.0], [2.0]]))
    # mean of exp(z) - y z: (1 - 0 + e - 2) / 2
    assert value == pytest.approx((1 + np.e - 2) / 2)


@bp.register_layer
class RunningMax(bp.Layer):
    """Identity that tracks the largest |x| seen in training, in a buffer it makes itself
    (no buffer_specs): such a layer keeps its buffer in a model and in a file."""

    def __init__(self) -> None:
        super().__init__()
        self.buffers = {"peak": np.zeros(1)}

    def forward(self, x, training=False):
        if training:
            self.buffers["peak"][0] = max(self.buffers["peak"][0], float(np.abs(x).max()))
        return x

    def backward(self, grad_out):
        return grad_out


def test_a_buffer_made_by_the_layer_itself_is_kept_and_saved(tmp_path, rng):
    model = bp.Sequential([bp.Dense(3, 2), RunningMax()], seed=0)
    assert model.buffers()["1.peak"].dtype == np.float32  # cast to the model's dtype
    model.forward(rng.normal(size=(4, 3)), training=True)
    assert model.buffers()["1.peak"][0] > 0
    bp.save(model, tmp_path / "m.npz")
    assert np.array_equal(
        bp.load(tmp_path / "m.npz").buffers()["1.peak"], model.buffers()["1.peak"]
    )
