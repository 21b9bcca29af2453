"""The smoke run's counterfactual study and its summary rows, recomputed from the retraining
outputs and the score table (the session's one smoke run: no extra workflow run)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy.stats import spearmanr

from llm_influence.attribution.estimators import estimator_tables
from llm_influence.counterfactual.estimators import tfidf_scores
from llm_influence.utils.io import load_arrays

pytestmark = pytest.mark.slow


def _cf(repo: Path) -> dict:
    return yaml.safe_load((repo / "config/smoke.yaml").read_text())["counterfactual"]


def _row(repo: Path, rid: str) -> list[str]:
    for line in (repo / "results/summary.md").read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if cells[0] == rid:
            return cells
    raise AssertionError(f"no summary row {rid}")


def test_each_retraining_is_its_own_job(smoke_run: Path) -> None:
    cf = _cf(smoke_run)
    (model,) = cf["models"]
    lock = yaml.safe_load((smoke_run / "dvc.lock").read_text())["stages"]
    for j in range(cf["subsets"]):
        assert f"retrain_subset-{model}-{j}" in lock
        assert (smoke_run / f"results/counterfactual/{model}/subsets/{j}/provenance.json").is_file()
    assert {
        f"retrain_leaveout-{model}-{m}" for m in ("ekfac", "graddot", "tfidf", "random")
    } <= set(lock)


def test_study_numbers_and_summary_rows_follow_the_retrainings(smoke_run: Path) -> None:
    cf = _cf(smoke_run)
    (model,) = cf["models"]
    out = smoke_run / "results/studies/counterfactual"
    metrics = json.loads((out / "metrics.json").read_text())
    m = metrics["per_model"][model]
    table = smoke_run / f"results/scores/{model}/table"
    scores = estimator_tables(table)  # every estimator the run's table has, plus the BM25 baseline
    assert m["methods"] == [*scores, "tfidf"]
    doc_id = load_arrays(table / "scores.safetensors")[0]["doc_id"].astype(np.int64)
    queries = json.loads((table / "index.json").read_text())["queries"]
    scores["tfidf"] = tfidf_scores(smoke_run / "results/tfidf", queries, doc_id)

    runs = [smoke_run / f"results/counterfactual/{model}/subsets/{j}" for j in range(cf["subsets"])]
    kept = [pd.read_parquet(d / "documents.parquet")["doc_id"].to_numpy() for d in runs]
    actual = np.stack([pd.read_parquet(d / "measurements.parquet").groupby("query")["logp"].mean()
                       .reindex(queries).to_numpy() for d in runs], axis=1)  # fmt: skip
    lds_table = pd.read_parquet(out / "lds.parquet")
    for method, s in scores.items():
        predicted = np.stack([s[:, np.isin(doc_id, k)].sum(axis=1) for k in kept], axis=1)
        mine = [spearmanr(p, a).statistic if np.ptp(p) and np.ptp(a) else np.nan
                for p, a in zip(predicted, actual)]  # fmt: skip
        theirs = lds_table[lds_table["method"] == method].set_index("query").loc[queries, "lds"]
        np.testing.assert_allclose(theirs.to_numpy(), mine, atol=1e-9)
        assert m["lds"][method]["mean"] == pytest.approx(np.nanmean(mine))

    deltas = {}
    for method in ("ekfac", "graddot", "tfidf", "random"):
        f = pd.read_parquet(
            smoke_run / f"results/counterfactual/{model}/leaveout/{method}/measurements.parquet"
        )
        f = f[f["leaveout"]]
        np.testing.assert_allclose(f["delta"], f["logp"] - f["logp_full"])
        deltas[method] = f["delta"].mean()
        assert m["delta_logp"][method]["mean"] == pytest.approx(deltas[method])
    headline = json.loads((out / "headline.json").read_text())
    assert headline[f"lds.{model}.ekfac"] == pytest.approx(m["lds"]["ekfac"]["mean"])

    lds_row = _row(smoke_run, "counterfactual.lds")
    assert lds_row[1].startswith("(validity check, not a paper claim)")
    ek, gd = m["lds"]["ekfac"]["mean"], m["lds"]["graddot"]["mean"]
    assert lds_row[4] == ("**holds**" if ek > gd else "**does not hold**")
    assert f"ekfac {ek:.3f}" in lds_row[3] and f"graddot {gd:.3f}" in lds_row[3]
    leave_row = _row(smoke_run, "counterfactual.leaveout")
    assert leave_row[1].startswith("(validity check, not a paper claim)")
    lower = deltas["ekfac"] < deltas["tfidf"] and deltas["ekfac"] < deltas["random"]
    assert leave_row[4] == ("**holds**" if lower else "**does not hold**")
    assert f"random {deltas['random']:.3f}" in leave_row[3]
