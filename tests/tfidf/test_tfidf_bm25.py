"""TF-IDF filter against a brute-force pure-Python BM25 (binary tf) reference.

Reference: score(q, d) = sum over query positions i of
IDF(q_i) * [q_i in d] (k1 + 1) / ([q_i in d] + k1 (1 - b + b |d| / avgdl)),
IDF(t) = log((C - df + 0.5) / (df + 0.5) + 1).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from llm_influence.tfidf import BM25Params
from llm_influence.tfidf.stage import build_candidates, compute_candidates
from llm_influence.utils.io import read_json
from llm_influence.workflow.context import StageContext

PAD = 0


def reference_scores(docs: list[list[int]], queries: list[list[int]], k1: float, b: float):
    c = len(docs)
    sets = [set(d) for d in docs]
    avgdl = sum(len(d) for d in docs) / c
    out = []
    for q in queries:
        row = []
        for d, s in zip(docs, sets):
            total = 0.0
            for t in q:
                df = sum(1 for s2 in sets if t in s2)
                idf = math.log((c - df + 0.5) / (df + 0.5) + 1)
                tf = 1.0 if t in s else 0.0
                total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(d) / avgdl))
            row.append(total)
        out.append(row)
    return np.array(out)


def pad(rows: list[list[int]], width: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((len(rows), width), PAD, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return ids, mask


def random_case(seed: int = 0, n_docs: int = 40, n_q: int = 6, vocab: int = 30):
    rng = np.random.default_rng(seed)
    # token ids 1..vocab-1 (0 = pad); documents of varied length, Zipf-ish token use
    p = 1.0 / np.arange(1, vocab)
    p /= p.sum()
    docs = [
        list(rng.choice(np.arange(1, vocab), size=rng.integers(3, 20), p=p)) for _ in range(n_docs)
    ]
    prompts = [list(rng.integers(1, vocab, size=rng.integers(2, 6))) for _ in range(n_q)]
    comps = [list(rng.integers(1, vocab, size=rng.integers(1, 4))) for _ in range(n_q)]
    return docs, prompts, comps


def make_inputs(docs, prompts, comps, t_doc=24, t_q=12, doc_ids=None):
    ids, mask = pad(docs, t_doc)
    train = {
        "input_ids": ids,
        "attention_mask": mask,
        "doc_id": np.asarray(
            doc_ids if doc_ids is not None else np.arange(len(docs)), dtype=np.int64
        ),
    }
    full = [p + c for p, c in zip(prompts, comps)]
    qids, qmask = pad(full, t_q)
    labels = np.full_like(qids, -100)
    for i, (p, c) in enumerate(zip(prompts, comps)):
        labels[i, len(p) : len(p) + len(c)] = c
    return train, {"input_ids": qids, "attention_mask": qmask, "labels": labels}


@pytest.mark.parametrize("b", [0.0, 0.75, 1.0])
@pytest.mark.parametrize("mode", ["prompt_completion", "completion"])
def test_matches_bruteforce(b, mode):
    docs, prompts, comps = random_case()
    train, queries = make_inputs(docs, prompts, comps)
    names = [f"q{i}" for i in range(len(prompts))]
    table, scores, doc_ids = compute_candidates(
        train, queries, names, top_k=10**6, params=BM25Params(k1=1.5, b=b), query_tokens=mode
    )
    qtoks = [p + c for p, c in zip(prompts, comps)] if mode == "prompt_completion" else comps
    ref = reference_scores(docs, qtoks, 1.5, b)
    np.testing.assert_allclose(scores, ref, rtol=0, atol=1e-9)
    assert len(table) == len(names) * len(docs)  # all docs when fewer than top_k


def test_repeated_query_tokens_count_each_time():
    docs = [[1, 2], [2, 3], [3, 4]]
    train, q1 = make_inputs(docs, [[1]], [[9]], t_doc=4, t_q=4)
    _, q2 = make_inputs(docs, [[1, 1]], [[9]], t_doc=4, t_q=4)
    _, s1, _ = compute_candidates(train, q1, ["a"], top_k=3, params=BM25Params())
    _, s2, _ = compute_candidates(train, q2, ["a"], top_k=3, params=BM25Params())
    np.testing.assert_allclose(s2, 2 * s1)
    assert s1[0, 0] > 0 and s1[0, 1] == 0


def test_top_k_and_ties_and_padding():
    # docs 5 and 3 identical (tie, broken by doc_id), doc 7 shares nothing; pad id 0 ignored
    docs = [[1, 2, 3], [1, 2, 3], [4, 5, 6], [1, 8, 8]]
    doc_ids = [5, 3, 7, 1]
    train, queries = make_inputs(docs, [[1, 2]], [[3]], t_doc=10, t_q=6, doc_ids=doc_ids)
    names = ["q"]
    table, scores, ids = compute_candidates(
        train, queries, names, top_k=2, params=BM25Params(b=0.0)
    )
    assert list(table["doc_id"]) == [3, 5]
    assert list(table["rank"]) == [1, 2]
    assert table["tfidf"].iloc[0] == table["tfidf"].iloc[1]
    ref = reference_scores(docs, [[1, 2, 3]], 1.5, 0.0)[0]
    order = np.argsort(doc_ids)
    np.testing.assert_allclose(scores[0], ref[order], atol=1e-12)
    # padding: masked positions are ignored whatever id they hold (here a real token, 9)
    train2 = dict(train, input_ids=np.where(train["attention_mask"] == 1, train["input_ids"], 9))
    queries2 = dict(
        queries, input_ids=np.where(queries["attention_mask"] == 1, queries["input_ids"], 9)
    )
    _, scores2, _ = compute_candidates(train2, queries2, names, top_k=2, params=BM25Params(b=0.0))
    np.testing.assert_array_equal(scores, scores2)


def test_full_ranking_is_sorted_and_complete():
    docs, prompts, comps = random_case(seed=3, n_docs=25)
    train, queries = make_inputs(docs, prompts, comps)
    names = [f"q{i}" for i in range(len(prompts))]
    table, scores, ids = compute_candidates(train, queries, names, top_k=7, params=BM25Params())
    for qi, (_name, grp) in enumerate(table.groupby("query", sort=False)):
        assert len(grp) == 7
        best = np.sort(scores[qi])[::-1][:7]
        np.testing.assert_allclose(grp["tfidf"].to_numpy(), best)
        assert (np.diff(grp["tfidf"].to_numpy()) <= 0).all()


def test_query_without_overlap():
    docs = [[1, 2], [3, 4], [5]]
    train, queries = make_inputs(docs, [[7]], [[8]], t_doc=4, t_q=4)
    table, scores, _ = compute_candidates(train, queries, ["none"], top_k=10, params=BM25Params())
    assert (scores == 0).all()
    assert list(table["doc_id"]) == [0, 1, 2]  # all zero: ordered by doc_id
    assert (table["tfidf"] == 0).all()


def test_multi_row_documents_are_merged():
    docs = [[1, 2], [3], [4, 5]]
    train, queries = make_inputs(docs, [[1]], [[3]], t_doc=4, t_q=4, doc_ids=[0, 0, 1])
    table, scores, ids = compute_candidates(train, queries, ["q"], top_k=5, params=BM25Params(b=0))
    assert list(ids) == [0, 1]
    ref = reference_scores([[1, 2, 3], [4, 5]], [[1, 3]], 1.5, 0.0)
    np.testing.assert_allclose(scores, ref, atol=1e-12)


def test_bad_params():
    with pytest.raises(ValueError, match="tfidf.b"):
        BM25Params(b=2.0)


def test_stage_entry(tmp_path):
    import torch

    from llm_influence.utils.io import save_tensors

    docs, prompts, comps = random_case(seed=1, n_docs=12, n_q=3)
    train, queries = make_inputs(docs, prompts, comps)
    tok = tmp_path / "tokenized"
    qdir = tmp_path / "queries"
    save_tensors(tok / "train.safetensors", {k: torch.from_numpy(v) for k, v in train.items()})
    save_tensors(qdir / "queries.safetensors", {k: torch.from_numpy(v) for k, v in queries.items()})
    pd.DataFrame(
        {
            "name": ["a", "b", "c"],
            "prompt": ["x"] * 3,
            "completion": ["y"] * 3,
            "language": ["en"] * 3,
            "tags": [["factual"]] * 3,
            "translation_of": [None] * 3,
            "variant_of": [None] * 3,
            "proponents": [[0, 1], [], [5]],
        }
    ).to_parquet(qdir / "queries.parquet")
    out = tmp_path / "tfidf"
    out.mkdir()
    ctx = StageContext(
        rule="tfidf",
        config={"tfidf": {"k1": 1.5, "b": 0.75, "top_k": 5, "query_tokens": "prompt_completion"}},
        input={"tokenized": tok, "queries": qdir},
        output={"tfidf": out},
    )
    metrics = build_candidates(ctx)
    cand = pd.read_parquet(out / "candidates.parquet")
    assert list(cand.columns) == ["query", "doc_id", "rank", "tfidf"]
    assert len(cand) == 15
    assert read_json(out / "metrics.json")["retrieval"]["n_queries_with_proponents"] == 2
    assert metrics["top_k"] == 5
    ref = reference_scores(docs, [p + c for p, c in zip(prompts, comps)], 1.5, 0.75)
    for qi, name in enumerate("abc"):
        got = cand[cand["query"] == name]
        np.testing.assert_allclose(got["tfidf"].to_numpy(), np.sort(ref[qi])[::-1][:5], atol=1e-9)
