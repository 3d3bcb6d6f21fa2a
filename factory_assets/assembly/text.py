"""Text features for the text-classification template, and the numbers that monitor text drift.

Words and word pairs are hashed into a fixed number of sparse columns (scikit-learn's
``HashingVectorizer``): no vocabulary is fitted, so the encoding is a few settings kept with the
model's category codes, and training, scoring, serving and evaluation encode text identically.

Text is personal data. Nothing here returns text: only sparse counts for the model and, for
monitoring, per-row descriptors (length, words, share of words unseen in the reference) that take
the text's place in drift reports.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

#: The ``kind`` of a text column's entry in a model's category codes.
HASHED_TEXT = "hashed_text"
#: Separates a text column's name from the number of its hashed column (``body__h123``).
HASHED_SEPARATOR = "__h"
_HASHED_NAME = re.compile(rf"^(?P<column>.+){HASHED_SEPARATOR}\d+$")
#: scikit-learn's default token: two or more word characters (the same words hashing sees).
TOKEN_PATTERN = r"\b\w\w+\b"
#: Descriptors that replace a text column in drift monitoring.
DESCRIPTORS = ("chars", "words", "unseen_word_share")


def text_encoding(n_features: int = 2**16, ngram_range: tuple[int, int] = (1, 2)) -> dict:
    """The settings of one text column's encoding, stored beside the category codes."""
    if n_features < 2 or ngram_range[0] < 1 or ngram_range[1] < ngram_range[0]:
        raise ValueError(f"invalid text encoding: n_features={n_features}, ngram_range={ngram_range}")
    return {"kind": HASHED_TEXT, "n_features": int(n_features), "ngram_range": [int(ngram_range[0]), int(ngram_range[1])]}


def is_text_encoding(codes) -> bool:
    return isinstance(codes, dict) and codes.get("kind") == HASHED_TEXT


def _vectorizer(encoding: dict):
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=int(encoding["n_features"]), ngram_range=tuple(encoding["ngram_range"]),
                             alternate_sign=False, norm=None, binary=True, dtype=np.float32)


def hash_text(values: pl.Series, encoding: dict):
    """CSR matrix (float32, 0/1) of the hashed words and word pairs of each row; null is no words."""
    texts = values.cast(pl.String).fill_null("").to_list()
    return _vectorizer(encoding).transform(texts).tocsr()


def hashed_names(column: str, encoding: dict) -> list[str]:
    return [f"{column}{HASHED_SEPARATOR}{i}" for i in range(int(encoding["n_features"]))]


def input_column(matrix_column: str) -> str:
    """The input column a matrix column comes from: ``body__h123`` -> ``body``; others unchanged."""
    match = _HASHED_NAME.match(matrix_column)
    return match.group("column") if match else matrix_column


def _tokens(values: pl.Series) -> pl.Series:
    return values.cast(pl.String).fill_null("").str.to_lowercase().str.extract_all(TOKEN_PATTERN)


def vocabulary(values: pl.Series, min_count: int = 2) -> frozenset[str]:
    """Words seen at least ``min_count`` times (rarer ones are names, numbers and typos)."""
    words = _tokens(values).explode().drop_nulls()
    counts = words.value_counts()
    return frozenset(counts.filter(pl.col("count") >= min_count)[words.name].to_list())


def text_descriptors(values: pl.Series, reference_vocabulary: frozenset[str]) -> pl.DataFrame:
    """Per row: characters, words, and the share of its words not in ``reference_vocabulary``.

    A new topic or a new kind of writer moves the unseen share; longer or shorter messages move
    the lengths. Columns are named ``<column>_<descriptor>``."""
    name = values.name
    tokens = _tokens(values)
    seen = pl.Series(sorted(reference_vocabulary), dtype=pl.String)
    unseen = tokens.list.eval(pl.element().is_in(seen.implode()).not_().cast(pl.Float64).mean())
    return pl.DataFrame({
        f"{name}_chars": values.cast(pl.String).fill_null("").str.len_chars().cast(pl.Float64),
        f"{name}_words": tokens.list.len().cast(pl.Float64),
        f"{name}_unseen_word_share": unseen.list.first().fill_null(0.0),
    })


def with_text_described(reference: pl.DataFrame, current: pl.DataFrame, columns: list[str],
                        text: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, list[str]]:
    """``reference`` and ``current`` with each text column of ``columns`` replaced by its descriptors
    (the vocabulary is the reference's), and the monitored column list to match."""
    described = [c for c in columns if c in set(text)]
    if not described:
        return reference, current, columns
    for column in described:
        words = vocabulary(reference[column])
        reference = reference.drop(column).hstack(text_descriptors(reference[column], words))
        current = current.drop(column).hstack(text_descriptors(current[column], words))
    out = []
    for column in columns:
        out += [f"{column}_{d}" for d in DESCRIPTORS] if column in described else [column]
    return reference, current, out
