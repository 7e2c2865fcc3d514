"""The ``text`` data source: labelled documents in fortune format -> a sparse TF-IDF matrix.

Fortune format (the Debian package ``fortunes``, see ``scripts/fetch_data.py fortunes``): one
file per category, the file name is the label, and the documents inside are separated by lines
holding a single ``%``. Index files (``*.dat``), the ``*.u8`` links, hidden files and
sub-folders are skipped.

TF-IDF (scikit-learn's ``TfidfVectorizer``) is fitted on the *training* documents only, then
applied to the validation and test documents, so no statistic of held-out text leaks into
training. Each row is L2-normalized, so standardization is not applied (centering a sparse
matrix would make it dense); the matrices stay CSR, in the configured dtype::

    tf(t, d)  = count of term t in document d     (1 + log tf with sublinear_tf)
    idf(t)    = 1 + log((1 + n_docs) / (1 + df(t)))
    x[d, t]   = tf(t, d) * idf(t) / ||tf(., d) * idf(.)||_2
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: option -> default for the ``text`` source (the type of each default is the option's type)
TEXT_OPTIONS: dict[str, Any] = {
    "path": "data/fortunes",
    "categories": [],  # file names to use as classes; [] means every category file
    "min_documents": 1,  # skip categories with fewer documents than this
    "max_features": 0,  # keep the most frequent terms only; 0 keeps every term
    "min_df": 2,  # ignore terms found in fewer training documents than this
    "ngram_max": 1,  # terms are word n-grams for n = 1 .. ngram_max
    "sublinear_tf": True,
}


def split_fortunes(text: str) -> list[str]:
    """The documents of one fortune-format file: blocks between lines that hold only ``%``,
    stripped, empty ones dropped."""
    docs, block = [], []
    for line in text.splitlines():
        if line.rstrip() == "%":
            docs.append("\n".join(block).strip())
            block = []
        else:
            block.append(line)
    docs.append("\n".join(block).strip())
    return [d for d in docs if d]


def category_files(path: str | Path) -> dict[str, Path]:
    """``{category: file}`` for every fortune-format file in the folder ``path``."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"text folder not found: {folder} (for the fortunes set run "
            "'python scripts/fetch_data.py fortunes' in a checkout of the repository, which writes "
            "data/fortunes)"
        )
    return {
        f.name: f
        for f in sorted(folder.iterdir())
        if f.is_file() and not f.is_symlink() and not f.name.startswith(".")
        if f.suffix not in (".dat", ".u8")
    }


def read_fortunes(
    path: str | Path, categories: list[str] | None = None, min_documents: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """``(documents, labels)``: two ``(n_documents,)`` object arrays of strings, in file order.

    Args:
        path: folder of fortune-format files.
        categories: the file names to read (all when empty or None); an unknown one is an
            error that lists those present.
        min_documents: leave out categories with fewer documents (only when ``categories``
            is not given).
    """
    files = category_files(path)
    if categories:
        unknown = [c for c in categories if c not in files]
        if unknown:
            raise ValueError(f"unknown categories {unknown} in {path}; present: {sorted(files)}")
        chosen = {c: files[c] for c in categories}
    else:
        chosen = files
    docs: list[str] = []
    labels: list[str] = []
    for name, file in chosen.items():
        found = split_fortunes(file.read_text(encoding="utf-8", errors="replace"))
        if not categories and len(found) < min_documents:
            continue
        docs += found
        labels += [name] * len(found)
    if not docs:
        raise ValueError(f"no documents found in {path} for categories {categories or 'all'}")
    return np.array(docs, dtype=object), np.array(labels, dtype=object)


def tfidf(opts: dict[str, Any]):
    """A ``TfidfVectorizer`` configured from the ``text`` source's options."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(
        max_features=opts["max_features"] or None,
        min_df=opts["min_df"],
        ngram_range=(1, opts["ngram_max"]),
        sublinear_tf=opts["sublinear_tf"],
        dtype=np.float64,
    )


def vectorize(ds: Any, opts: dict[str, Any], dtype: Any = np.float32) -> Any:
    """Replace the documents of ``ds`` (train, validation, test) by TF-IDF CSR matrices of
    ``dtype``, with the vectorizer fitted on the training documents only; returns ``ds``."""
    vec = tfidf(opts)
    ds.X_train = vec.fit_transform(list(ds.X_train)).astype(dtype)
    ds.X_test = vec.transform(list(ds.X_test)).astype(dtype)
    if ds.X_val is not None:
        ds.X_val = vec.transform(list(ds.X_val)).astype(dtype)
    ds.info["n_terms"] = len(vec.vocabulary_)
    return ds
