"""Side-by-side benchmarks of backprop against scikit-learn and PyTorch (see run.py)."""
