"""The ``text`` data source and configs/fortunes-tfidf.toml, on a small fortune-format folder
written by the test (the Debian package need not be installed)."""

import json
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import backprop as bp
from backprop.app import sources, text
from backprop.app.cli import main

ROOT = Path(__file__).parent.parent
TOPICS = {
    "computers": "program compiler bug kernel disk memory byte",
    "food": "bread cheese soup dinner recipe butter garlic",
    "love": "heart kiss romance darling passion wedding sweet",
}


def write_fortunes(folder: Path, n_per_topic: int = 30, seed: int = 0) -> Path:
    """One file per topic; every quotation holds 4 of the topic's words and one word of its own
    (``uniq<k>``), so the vocabulary size tells which documents the TF-IDF was fitted on."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    k = 0
    for topic, words in TOPICS.items():
        quotes = []
        for _ in range(n_per_topic):
            chosen = rng.choice(words.split(), size=4, replace=False)
            quotes.append(" ".join(chosen) + f"\n\t\t-- uniq{k}")
            k += 1
        (folder / topic).write_text("\n%\n".join(quotes) + "\n%\n")
        (folder / f"{topic}.dat").write_bytes(b"\x00\x02binary index")
    (folder / "computers.u8").symlink_to(folder / "computers")
    return folder


def test_split_fortunes_separates_on_percent_lines_and_drops_empty_ones():
    raw = "first one\nline two\n%\n%\n  second  \n%\nthird 100%\n%\n"
    assert text.split_fortunes(raw) == ["first one\nline two", "second", "third 100%"]


def test_read_fortunes_reads_category_files_only(tmp_path):
    folder = write_fortunes(tmp_path / "f", n_per_topic=5)
    docs, labels = text.read_fortunes(folder)
    assert sorted(set(labels)) == sorted(TOPICS) and len(docs) == 15
    assert all("binary" not in d for d in docs)
    docs, labels = text.read_fortunes(folder, ["love", "food"])
    assert list(labels[:5]) == ["love"] * 5 and len(docs) == 10
    with pytest.raises(ValueError, match=r"unknown categories \['nope'\]"):
        text.read_fortunes(folder, ["nope"])
    with pytest.raises(FileNotFoundError, match="fetch_data.py fortunes"):
        text.read_fortunes(tmp_path / "missing")


def test_prepare_gives_csr_tfidf_fitted_on_the_training_documents_only(tmp_path):
    folder = write_fortunes(tmp_path / "f")
    opts = {**sources.COMMON_OPTIONS, **text.TEXT_OPTIONS, "source": "text", "min_df": 1}
    opts.update(path=str(folder), test_size=0.2, validation_size=0.1)
    ds = sources.prepare(opts, dtype=np.float32)
    for X in (ds.X_train, ds.X_val, ds.X_test):
        assert sp.issparse(X) and X.format == "csr" and X.dtype == np.float32
    n_train = ds.X_train.shape[0]
    assert n_train + ds.X_val.shape[0] + ds.X_test.shape[0] == 90
    shared = len(set(" ".join(TOPICS.values()).split()))
    assert ds.info["n_terms"] == shared + n_train  # one own word per training quotation
    np.testing.assert_allclose(sp.linalg.norm(ds.X_train, axis=1), 1.0, rtol=1e-6)
    assert ds.classes == sorted(TOPICS) and ds.task == "classification"


def test_the_fortunes_config_trains_through_the_command_line(tmp_path, capsys):
    folder = write_fortunes(tmp_path / "f")
    config = ROOT / "configs" / "fortunes-tfidf.toml"
    overrides = [
        f"data.path='{folder}'",
        'data.categories=["computers", "food", "love"]',
        "data.min_df=1",
        "trainer.epochs=8",
        "output.plots=false",
    ]
    args = [a for o in overrides for a in ("--set", o)]
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--quiet", *args]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["test"]["accuracy"] > 0.8  # three topics with disjoint words
    model = bp.load(tmp_path / "run" / "model.npz")
    assert isinstance(model, bp.Sequential) and model.layers[0].in_features > 21


def test_the_sparse_benchmark_runs_on_a_small_folder(tmp_path, capsys):
    import importlib
    import sys

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    bench = importlib.import_module("benchmarks.sparse_text")
    folder = write_fortunes(tmp_path / "f")
    argv = ["--path", str(folder), "--min-documents", "1", "--epochs", "1", "--repeats", "1"]
    assert bench.main([*argv, "--hidden", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:4]}
    assert set(rows) == {"backprop", "sklearn"}
    for values in rows.values():
        assert all(np.isfinite(float(v)) and float(v) >= 0 for v in values)
    assert float(rows["sklearn"][1]) == 1.0  # the ratio column is relative to sklearn
