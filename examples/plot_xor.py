"""
XOR: the smallest problem a single layer cannot solve
=====================================================

Two inputs, four points, labels ``x1 XOR x2``. A linear model cannot separate them; one hidden
layer of four tanh units can. We train full-batch with Adam and draw the decision function.
"""

import matplotlib.pyplot as plt
import numpy as np

import backprop as bp

X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
y = np.array([0, 1, 1, 0])

model = bp.Sequential([bp.Dense(2, 4), bp.Tanh(), bp.Dense(4, 2)], seed=0)
trainer = bp.Trainer(
    model, bp.SoftmaxCrossEntropy(), bp.Adam(lr=0.05), mode="batch", epochs=300, seed=0
)
history = trainer.fit(X, y)
print("final loss", history["loss"][-1])
print("predictions", model.predict(X).argmax(axis=1), "labels", y)

# %%
# The decision function: the probability of class 1 over the plane.
grid = np.linspace(-0.5, 1.5, 101, dtype=np.float32)
gx, gy = np.meshgrid(grid, grid)
logits = model.predict(np.column_stack([gx.ravel(), gy.ravel()]))
p1 = np.exp(logits - logits.max(axis=1, keepdims=True))
p1 = (p1[:, 1] / p1.sum(axis=1)).reshape(gx.shape)

fig, ax = plt.subplots(figsize=(4.5, 4))
cs = ax.contourf(gx, gy, p1, levels=20, cmap="RdBu_r")
ax.scatter(X[:, 0], X[:, 1], c=y, cmap="RdBu_r", edgecolors="k", s=120)
ax.set(xlabel="$x_1$", ylabel="$x_2$", title="P(class 1)")
fig.colorbar(cs)
plt.show()
