"""The scoring stage's options, each against the plain all-sequences run of the same factors:
TF-IDF candidates only, the full-rank re-score of the top-k, PCG-refined IHVPs (replacing or beside
plain EK-FAC), and the bad inputs they must refuse before any gradient work."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from attribution_fixtures import fit_factors, run, score_table, with_shards

from llm_influence.attribution.estimators import estimator_names, estimator_tables
from llm_influence.attribution.shard_scoring import shard_rows
from llm_influence.utils.io import load_tensors, read_json

STAGE = "llm_influence.attribution.stage"
CANDIDATES_PER_QUERY = 5


def _scores(config: dict, **overrides) -> dict:
    config = copy.deepcopy(config)
    config["scores"].update(overrides)
    return config


@pytest.fixture(scope="module")
def base(artifacts, tmp_path_factory):
    root = tmp_path_factory.mktemp("options")
    config = with_shards(artifacts["config"], 1, 2)
    factors = fit_factors(artifacts, root, config)
    table = score_table(artifacts, root / "all", config, factors)
    return {"config": config, "factors": factors, "table": table, "root": root}


@pytest.fixture(scope="module")
def few_candidates(artifacts, base):
    """A TF-IDF output with each query's best 5 documents only (a small share of the training set)."""
    cand = pd.read_parquet(artifacts["tfidf"] / "candidates.parquet")
    out = base["root"] / "tfidf-few"
    out.mkdir()
    cand[cand["rank"] <= CANDIDATES_PER_QUERY].to_parquet(out / "candidates.parquet")
    return out


def _table(path):
    tensors, meta = load_tensors(path / "scores.safetensors")
    return tensors, meta, read_json(path / "index.json")


def test_tfidf_candidates_score_only_the_union_and_equal_the_full_run(
    artifacts, base, few_candidates
):
    config = _scores(base["config"], candidates="tfidf")
    arts = {**artifacts, "tfidf": few_candidates}
    table = score_table(arts, base["root"] / "tfidf", config, base["factors"])
    full, _, _ = _table(base["table"])
    part, meta, index = _table(table)
    cand = pd.read_parquet(few_candidates / "candidates.parquet")
    union = set(cand["doc_id"].astype(int))
    assert set(part["doc_id"].tolist()) == union
    assert index["candidates"] == "tfidf" and index["n_train"] == full["total"].shape[1]
    assert part["total"].shape[1] < 0.5 * full["total"].shape[1]
    column = {int(d): i for i, d in enumerate(full["doc_id"].tolist())}
    cols = [column[int(d)] for d in part["doc_id"].tolist()]
    for key in ("total", "graddot", "layers"):  # same scale (per copy of N), same numbers
        torch.testing.assert_close(part[key], full[key][:, cols], rtol=1e-4, atol=1e-6)
    # the mask marks each query's own candidates; the shown top-k lies among them
    tokens = pd.read_parquet(table / "tokens.parquet")
    for q, name in enumerate(meta["queries"]):
        mine = set(cand.loc[cand["query"] == name, "doc_id"].astype(int))
        marked = {int(d) for d, m in zip(part["doc_id"].tolist(), part["candidate"][q]) if m}
        assert marked == mine
        assert set(tokens.loc[tokens["query"] == name, "doc_id"]) <= mine


def test_rerank_full_rescores_the_top_k_at_full_rank(artifacts, base):
    table = score_table(
        artifacts,
        base["root"] / "rerank",
        _scores(base["config"], rerank_full=True),
        base["factors"],
    )
    exact = score_table(
        artifacts, base["root"] / "fullrank", _scores(base["config"], rank=None), base["factors"]
    )
    low, _, _ = _table(base["table"])
    rr, _, _ = _table(table)
    ex, _, _ = _table(exact)
    tokens = pd.read_parquet(table / "tokens.parquet")
    column = {int(d): i for i, d in enumerate(rr["doc_id"].tolist())}
    queries = read_json(table / "index.json")["queries"]
    changed = 0
    for q, name in enumerate(queries):
        cols = [column[int(d)] for d in tokens.loc[tokens["query"] == name, "doc_id"].unique()]
        torch.testing.assert_close(rr["total"][q, cols], ex["total"][q, cols], rtol=1e-3, atol=1e-6)
        changed += int((rr["total"][q, cols] != low["total"][q, cols]).sum())
        rest = torch.ones(rr["total"].shape[1], dtype=torch.bool)
        rest[cols] = False
        torch.testing.assert_close(rr["total"][q, rest], low["total"][q, rest])
    assert changed > 0  # rank 32 is not exact at this width: the re-score did something


@pytest.mark.parametrize("replaces", [True, False])
def test_refined_estimator_is_scored_beside_plain_ekfac(artifacts, base, replaces):
    config = _scores(
        base["config"], refine_steps=2, refine_products="sampled", refine_sequences=64,
        refine_replaces=replaces,
    )  # fmt: skip
    table = score_table(artifacts, base["root"] / f"refine-{replaces}", config, base["factors"])
    plain = estimator_tables(base["table"])
    got = estimator_tables(table)
    strategy = config["factors"]["strategy"]
    assert list(got) == estimator_names(strategy, config["scores"])
    assert "ekfac_pcg2" in got
    np.testing.assert_allclose(got[strategy], plain[strategy], rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(got["graddot"], plain["graddot"], rtol=1e-4, atol=1e-7)
    refined = got["ekfac_pcg2"]
    assert not np.allclose(refined, plain[strategy], rtol=1e-2)
    assert np.corrcoef(refined.ravel(), plain[strategy].ravel())[0, 1] > 0.5
    index = read_json(table / "index.json")
    assert index["method"] == ("ekfac_pcg2" if replaces else strategy)
    metrics = read_json(table.parent / "shards" / "0" / "provenance.json")["metrics"]
    residuals = metrics["refine"]["residual_mean"]
    assert len(residuals) == 3 and residuals[0] == pytest.approx(1.0)


def test_bad_inputs_fail_before_any_gradient_work(artifacts, base, tmp_path):
    inputs = {
        "model": artifacts["model"],
        "tokenized": artifacts["tokenized"],
        "factors": base["factors"],
        "queries": artifacts["queries"],
        "tfidf": [],
    }

    def score(config, inputs=inputs):
        run(f"{STAGE}:score_shard", config, inputs, {"shard": tmp_path / "s"}, {"shard": "0"})

    with pytest.raises(ValueError, match="scores.candidates: tfidf needs the TF-IDF output"):
        score(_scores(base["config"], candidates="tfidf"))
    with pytest.raises(
        ValueError, match=r"scores.topk_tokens = 100000 is larger than score shard 0"
    ):
        score(_scores(base["config"], topk_tokens=100000))
    with pytest.raises(
        ValueError, match="scores.refine_sequences = 100000 is larger than the fit set"
    ):
        score(_scores(base["config"], refine_steps=1, refine_sequences=100000))
    bad = tmp_path / "tfidf-bad"
    bad.mkdir()
    pd.DataFrame({"query": ["x"], "doc_id": [10**9], "rank": [1], "tfidf": [1.0]}).to_parquet(
        bad / "candidates.parquet"
    )
    with pytest.raises(ValueError, match=r"candidate doc_id \[1000000000\] not in the tokenised"):
        score(_scores(base["config"], candidates="tfidf"), {**inputs, "tfidf": bad})
    assert not (tmp_path / "s").exists()


def test_shard_rows_split_the_candidate_union():
    doc_id = torch.tensor([5, 6, 6, 7, 8, 9])  # doc 6 spans two sequences
    cand = pd.DataFrame({"query": ["a", "a", "b"], "doc_id": [6, 9, 5]})
    parts = [shard_rows(doc_id, 2, s, "tfidf", ["a", "b"], cand) for s in range(2)]
    assert torch.cat([p.rows for p in parts]).tolist() == [0, 1, 2, 5]
    mask = torch.cat([p.candidates for p in parts], dim=1)
    assert mask.tolist() == [[False, True, True, True], [True, False, False, False]]
    assert all(p.n_train == 6 for p in parts)
    with pytest.raises(ValueError, match=r"no TF-IDF candidates for queries \['c'\]"):
        shard_rows(doc_id, 1, 0, "tfidf", ["a", "c"], cand)
    with pytest.raises(ValueError, match="scores.candidates must be one of"):
        shard_rows(doc_id, 1, 0, "some", ["a"], cand)
