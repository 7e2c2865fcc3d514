"""Train an MLP on sklearn's digits with a hand-written loop over backprop's core pieces.

No Trainer, no optimizer class: forward, loss, backward and a momentum SGD step on the model's
flat parameter vector, so every step of backpropagation is on this page.

    python scripts/train_digits_by_hand.py
"""

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import backprop as bp

X, y = load_digits(return_X_y=True)
X = (X / 16.0).astype(np.float32)  # pixels are 0..16
X_train, X_test, y_train, y_test = train_test_split(
    X, y, test_size=0.25, stratify=y, random_state=0
)

model = bp.Sequential([bp.Dense(64, 128), bp.ReLU(), bp.Dense(128, 10)], seed=0)
loss = bp.SoftmaxCrossEntropy()
lr, momentum, batch_size, epochs = 0.1, 0.9, 32, 30
velocity = np.zeros_like(model.flat_parameters)
rng = np.random.default_rng(0)

for epoch in range(epochs):
    order = rng.permutation(len(X_train))  # shuffle indices, never the data
    total = 0.0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        logits = model.forward(X_train[idx], training=True)
        total += loss.forward(logits, y_train[idx]) * len(idx)
        model.backward(loss.backward(), need_input_grad=False)
        velocity *= momentum
        velocity -= lr * model.flat_gradients  # one update for every parameter at once
        model.flat_parameters += velocity
    if epoch % 5 == 4 or epoch == epochs - 1:
        acc = np.mean(model.predict(X_test).argmax(axis=1) == y_test)
        print(f"epoch {epoch + 1:3d}  train loss {total / len(order):.4f}  test accuracy {acc:.4f}")

accuracy = np.mean(model.predict(X_test).argmax(axis=1) == y_test)
print(f"final test accuracy: {accuracy:.4f}")
