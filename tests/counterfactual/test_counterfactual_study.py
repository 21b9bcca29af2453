"""The study on hand-built retrainings: it reports every estimator of the table (one added to the
registry appears without a change), its LDS and leave-out numbers equal an independent
computation, the validity checks follow the numbers, and a run without a retrainable model is
recorded as skipped."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import spearmanr

from llm_influence.artifacts.scores import write_score_table
from llm_influence.counterfactual.study import CounterfactualInputs, run
from llm_influence.studies.claims import FAILS, HOLDS, INCONCLUSIVE
from llm_influence.studies.counterfactual import CLAIMS, judge_lds, judge_leaveout
from llm_influence.studies.summary import build_summary
from llm_influence.utils.io import write_json

# the shipped summary thresholds (the summary has no defaults of its own)
REPORT = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/config.yaml").read_text())[
    "report"
]
CFG = {"alpha": 0.5, "subsets": 6, "seeds": 1, "remove_k": 1, "n_bootstrap": 200,
       "models": ["m"], "leaveout_tag": "factual", "keep_models": False}  # fmt: skip
QUERIES = ["fact_a", "fact_b", "poem"]
DOCS = np.arange(10, 18)  # 8 documents, one training row each


def _build(root, deltas: dict[str, float], extra=()) -> CounterfactualInputs:
    rng = np.random.default_rng(0)
    ekfac = rng.normal(size=(len(QUERIES), len(DOCS)))
    table = root / "scores" / "m" / "table"
    write_score_table(table, {"total": torch.from_numpy(ekfac), "graddot": torch.from_numpy(-ekfac),
                              "refined": torch.from_numpy(2 * ekfac), "doc_id": torch.from_numpy(DOCS),
                              "layers": torch.from_numpy(ekfac[..., None].copy())},
                      queries=QUERIES, modules=["m"],
                      estimators=[("total", "ekfac"), ("graddot", "graddot"), *extra])  # fmt: skip
    tfidf = root / "tfidf"
    tfidf.mkdir()
    pd.DataFrame({"query": ["fact_a", "fact_b"], "doc_id": [11, 12], "rank": [1, 1],
                  "tfidf": [5.0, 4.0]}).to_parquet(tfidf / "candidates.parquet")  # fmt: skip
    queries = root / "queries"
    queries.mkdir()
    pd.DataFrame(
        {"name": QUERIES, "tags": [["factual"], ["factual"], ["memorisation"]]}
    ).to_parquet(queries / "queries.parquet")
    runs = []
    for j in range(CFG["subsets"]):  # actual log p = the EK-FAC prediction (+ a constant)
        kept = np.sort(rng.choice(DOCS, size=4, replace=False))
        logp = ekfac[:, np.isin(DOCS, kept)].sum(axis=1) - 7.0
        d = root / "counterfactual" / "m" / "subsets" / str(j)
        d.mkdir(parents=True)
        pd.DataFrame({"query": QUERIES, "seed": 0, "logp": logp}).to_parquet(
            d / "measurements.parquet"
        )
        pd.DataFrame({"doc_id": kept}).to_parquet(d / "documents.parquet")
        write_json(d / "metrics.json", {"heldout_loss": [3.0]})
        runs.append(d)
    for method, delta in deltas.items():
        d = root / "counterfactual" / "m" / "leaveout" / method
        d.mkdir(parents=True)
        pd.DataFrame({"query": QUERIES, "leaveout": [True, True, False], "logp_full": -5.0,
                      "logp": -5.0 + delta, "delta": delta}).to_parquet(d / "measurements.parquet")  # fmt: skip
        pd.DataFrame({"doc_id": [11, 12]}).to_parquet(d / "documents.parquet")
        write_json(d / "metrics.json", {"heldout_loss": 3.1, "n_removed_documents": 2})
        runs.append(d)
    return CounterfactualInputs.from_paths(["m"], [table], runs, queries, tfidf, root / "out")


def test_study_reports_every_estimator_with_independent_numbers(tmp_path) -> None:
    """A third estimator in the table (as the scoring stage writes the refined EK-FAC) is
    reported too: the study takes the table's estimator list, not a list of its own."""
    inputs = _build(tmp_path, {"ekfac": -3.0, "graddot": -2.0, "tfidf": -1.0, "random": -0.5},
                    extra=[("refined", "ekfac_refined")])  # fmt: skip
    metrics = run(inputs, CFG)
    m = metrics["per_model"]["m"]
    assert m["methods"] == ["ekfac", "graddot", "ekfac_refined", "tfidf"]
    assert set(m["lds"]) == set(m["methods"])
    # actual = EK-FAC's prediction: LDS 1; gradient dot = −EK-FAC: −1; a positive multiple: 1
    assert m["lds"]["ekfac"]["mean"] == pytest.approx(1.0)
    assert m["lds"]["graddot"]["mean"] == pytest.approx(-1.0)
    assert m["lds"]["ekfac_refined"]["mean"] == pytest.approx(1.0)
    lds = pd.read_parquet(tmp_path / "out" / "lds.parquet")
    for q in QUERIES:  # the TF-IDF LDS per query, recomputed with scipy from the files
        pred, act = [], []
        for j in range(CFG["subsets"]):
            d = tmp_path / "counterfactual" / "m" / "subsets" / str(j)
            kept = pd.read_parquet(d / "documents.parquet")["doc_id"]
            pred.append(
                {"fact_a": 5.0 * (11 in set(kept)), "fact_b": 4.0 * (12 in set(kept))}.get(q, 0.0)
            )
            act.append(
                pd.read_parquet(d / "measurements.parquet").set_index("query").loc[q, "logp"]
            )
        got = lds[(lds["method"] == "tfidf") & (lds["query"] == q)]["lds"].iloc[0]
        want = spearmanr(pred, act).statistic if np.ptp(pred) > 0 else np.nan
        np.testing.assert_allclose(got, want)
    assert m["delta_logp"]["ekfac"]["mean"] == pytest.approx(-3.0)  # fact queries only
    assert m["delta_logp"]["random"]["n_removed"] == 2
    assert m["best_query"]["lds"] == pytest.approx(1.0)
    for name in ("lds_m.png", "scatter_m.png", "leaveout_m.png", "leaveout.parquet"):
        assert (tmp_path / "out" / name).is_file(), name
    assert judge_lds(metrics).verdict == HOLDS
    assert judge_leaveout(metrics).verdict == HOLDS


def test_checks_follow_the_numbers(tmp_path) -> None:
    """EK-FAC's removal hurts less than TF-IDF's: the leave-out check does not hold."""
    inputs = _build(tmp_path, {"ekfac": -1.0, "graddot": -2.0, "tfidf": -3.0, "random": -0.5})
    metrics = run(inputs, CFG)
    leave = judge_leaveout(metrics)
    assert leave.verdict == FAILS and "ekfac -1.000" in leave.ours and "tfidf -3.000" in leave.ours
    flipped = json.loads(json.dumps(metrics))
    lds = flipped["per_model"]["m"]["lds"]
    lds["ekfac"]["mean"], lds["graddot"]["mean"] = -0.2, 0.1
    assert judge_lds(flipped).verdict == FAILS
    rows = build_summary({"counterfactual": metrics}, ["m"], REPORT).set_index("id")
    assert [c.id for c in CLAIMS] == ["counterfactual.lds", "counterfactual.leaveout"]
    for cid in ("counterfactual.lds", "counterfactual.leaveout"):
        assert rows.loc[cid, "claim"].startswith("(validity check, not a paper claim)")
    assert rows.loc["counterfactual.leaveout", "verdict"] == FAILS


def test_no_retrainable_model_is_recorded_as_skipped(tmp_path) -> None:
    inputs = CounterfactualInputs.from_paths([], [], [], None, None, tmp_path / "out")
    metrics = run(inputs, {**CFG, "models": []})
    assert "pretrained checkpoint has no recipe" in metrics["skipped"]
    assert (tmp_path / "out" / "counterfactual.png").is_file()
    rows = build_summary({"counterfactual": metrics}, ["pythia-70m"], REPORT).set_index("id")
    assert rows.loc["counterfactual.lds", "verdict"] == INCONCLUSIVE
    assert "no recipe" in rows.loc["counterfactual.lds", "ours"]
