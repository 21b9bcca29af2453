"""LDS, bootstrap, subset and removal sets against hand-computed and independent values."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from llm_influence.counterfactual.estimators import tfidf_scores
from llm_influence.counterfactual.lds import (
    bootstrap_lds,
    bootstrap_mean,
    lds_per_query,
    predicted_sums,
    spearman_rows,
)
from llm_influence.counterfactual.subsets import (
    random_documents,
    subset_documents,
    subset_masks,
    top_documents,
)


def test_lds_hand_computed() -> None:
    # 2 queries, 4 training documents, 3 subsets
    scores = np.array([[1.0, 2.0, 3.0, 4.0], [4.0, -1.0, 0.0, 0.5]])
    masks = np.array([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]], dtype=float)
    # predicted g = sums over each subset: q0: 1+2=3, 2+3=5, 1+4=5 ; q1: 4-1=3, -1+0=-1, 4+0.5=4.5
    np.testing.assert_allclose(predicted_sums(scores, masks), [[3, 5, 5], [3, -1, 4.5]])
    actual = np.array([[0.1, 0.3, 0.2], [-2.0, -3.0, -1.0]])
    # q0: ranks of g (3, 5, 5) = (1, 2.5, 2.5); ranks of f = (1, 3, 2);
    #     centred (-1, .5, .5) and (-1, 1, 0): cov = 1 + .5 = 1.5, |a| = sqrt(1.5), |b| = sqrt(2)
    #     -> 1.5 / sqrt(3) = 0.8660
    # q1: ranks of g (2, 1, 3) and of f (2, 1, 3) -> 1
    np.testing.assert_allclose(lds_per_query(scores, masks, actual), [1.5 / np.sqrt(3), 1.0])


def test_spearman_matches_scipy_and_constant_rows_are_nan() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 9)), rng.normal(size=(5, 9))
    a[1, :3] = a[1, 0]  # ties
    expected = [spearmanr(x, y).statistic for x, y in zip(a, b)]
    np.testing.assert_allclose(spearman_rows(a, b), expected)
    b[2] = 1.0
    assert np.isnan(spearman_rows(a, b)[2])
    with pytest.raises(ValueError, match="at least 2 subsets"):
        spearman_rows(a[:, :1], b[:, :1])


def test_bootstrap_is_paired_and_brackets_the_mean() -> None:
    rng = np.random.default_rng(1)
    actual = rng.normal(size=(20, 12))
    good = actual + 0.3 * rng.normal(size=actual.shape)  # predicts well
    noise = rng.normal(size=actual.shape)  # predicts nothing
    out = bootstrap_lds({"good": good, "noise": noise}, actual, 300, seed=0)
    assert out["good"]["low"] <= out["good"]["mean"] <= out["good"]["high"]
    assert out["good"]["mean"] == pytest.approx(np.mean(spearman_rows(good, actual)))
    assert out["diff:good-noise"]["low"] > 0  # clearly better, and the interval says so
    assert out["diff:noise-good"]["mean"] == pytest.approx(-out["diff:good-noise"]["mean"])
    actual[0] = 0.0  # a query whose measurement never moves is left out, not counted as 0
    out = bootstrap_lds({"good": good}, actual, 10, seed=0)
    assert out["good"]["n_queries"] == 19
    stats = bootstrap_mean(np.array([1.0, 2.0, np.nan, 3.0]), 200, seed=0)
    assert stats["mean"] == 2.0 and stats["n"] == 3 and 1.0 <= stats["low"] <= stats["high"] <= 3.0


def test_subsets_are_seeded_alpha_fractions() -> None:
    docs = np.repeat(np.arange(100, 300), 2)  # 200 documents, two rows each
    s0 = subset_documents(docs, 0.5, seed=0, subset=0)
    assert len(s0) == 100 and len(np.unique(s0)) == 100 and np.isin(s0, docs).all()
    np.testing.assert_array_equal(s0, subset_documents(docs, 0.5, seed=0, subset=0))
    assert not np.array_equal(s0, subset_documents(docs, 0.5, seed=0, subset=1))
    assert not np.array_equal(s0, subset_documents(docs, 0.5, seed=1, subset=0))
    assert len(subset_documents(docs, 0.25, 0, 3)) == 50
    masks = subset_masks(docs, [s0])
    assert masks.shape == (1, 400) and masks.sum() == 200  # both rows of a kept document
    for alpha in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
            subset_documents(docs, alpha, 0, 0)


def test_removal_sets_have_the_same_size_for_every_method() -> None:
    docs = np.arange(10)
    scores = np.array([[9, 8, 7, 0, 0, 0, 0, 0, 0, 1.0], [9, 0, 0, 8, 7, 0, 0, 0, 0, 0.0]])
    # top-2: q0 {0, 1}, q1 {0, 3}: union {0, 1, 3}; topped up with the next rank (q0: 2) to 2*2 = 4
    np.testing.assert_array_equal(top_documents(scores, docs, [0, 1], k=2, size=4), [0, 1, 2, 3])
    np.testing.assert_array_equal(top_documents(scores, docs, [1], k=2, size=2), [0, 3])
    rand = random_documents(docs, 4, seed=0)
    assert len(rand) == 4 and np.array_equal(rand, random_documents(docs, 4, seed=0))
    with pytest.raises(ValueError, match="leaves none of the 10 training documents"):
        top_documents(scores, docs, [0, 1], k=5, size=10)
    with pytest.raises(ValueError, match="cannot remove 10 of 10"):
        random_documents(docs, 10, seed=0)


def test_tfidf_scores_fill_every_row_of_a_document(tmp_path) -> None:
    pd.DataFrame({"query": ["a", "a", "b", "zz"], "doc_id": [7, 5, 7, 5], "rank": [1, 2, 1, 1],
                  "tfidf": [2.0, 1.0, 3.0, 9.0]}).to_parquet(tmp_path / "candidates.parquet")  # fmt: skip
    out = tfidf_scores(tmp_path, ["a", "b"], np.array([5, 7, 7, 9]))
    np.testing.assert_array_equal(out, [[1, 2, 2, 0], [0, 3, 3, 0]])
