"""
Training curves on the digits
=============================

A 64-128-10 ReLU network on scikit-learn's 8x8 digits, trained in mini-batches with Adam and a
cosine schedule; 10 % of the training rows are held out for validation.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import backprop as bp

X, y = load_digits(return_X_y=True)
X = (X / 16).astype(np.float32)

model = bp.Sequential([bp.Dense(128), bp.ReLU(), bp.Dropout(0.1), bp.Dense(10)], seed=0)
trainer = bp.Trainer(
    model,
    bp.SoftmaxCrossEntropy(),
    bp.Adam(lr=3e-3),
    batch_size=32,
    epochs=15,
    schedule=bp.CosineDecay(total=15),
    seed=0,
)
history = trainer.fit(X[:1400], y[:1400], validation_split=0.1)
print(trainer.evaluate(X[1400:], y[1400:]))

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(8, 3))
ax1.plot(history["loss"], label="training")
ax1.plot(history["val_loss"], label="validation")
ax1.set(xlabel="epoch", ylabel="loss")
ax1.legend()
ax2.plot(history["val_accuracy"])
ax2.set(xlabel="epoch", ylabel="validation accuracy")
fig.tight_layout()
plt.show()
