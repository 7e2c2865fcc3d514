"""
Checking gradients against finite differences
=============================================

Every backward pass in backprop is tested against central finite differences in float64.
:func:`backprop.check_gradients` does the same for any model and loss: it copies the model to
float64, perturbs each checked weight by :math:`\\pm\\varepsilon` and compares
:math:`(L(w + \\varepsilon) - L(w - \\varepsilon)) / 2\\varepsilon` with the analytic gradient.
"""

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp

rng = np.random.default_rng(0)
X = rng.normal(size=(16, 5)).astype(np.float32)
y = rng.integers(0, 3, size=16)

model = bp.Sequential(
    [bp.Dense(5, 8), bp.Tanh(), bp.LayerNorm(8), bp.Dense(8, 8), bp.GELU(), bp.Dense(8, 3)],
    seed=0,
)
report = bp.check_gradients(model, bp.SoftmaxCrossEntropy(), X, y, l2=1e-3)
print(report)

# %%
# The largest relative error of each parameter (and of the input gradient), on a log scale:
# all of them are many orders of magnitude below the tolerance.
names = [c.name for c in report.checks]
errors = [max(c.max_rel_error, 1e-16) for c in report.checks]
fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(names, errors)
ax.axvline(report.rtol, color="C3", linestyle="--", label=f"rtol = {report.rtol:g}")
ax.set(xscale="log", xlabel="max relative error", title=f"passed: {report.passed}")
ax.legend()
fig.tight_layout()
plt.show()
