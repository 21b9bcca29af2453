"""The smoke run's figures, summary and report are there and computed from the score tables."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from safetensors.numpy import load_file
from workflow_helpers import snakemake

from llm_influence.studies.registry import NAMES

pytestmark = pytest.mark.slow

STUDIES = list(NAMES)  # every registered study, its own rule or the shared one
CLAIMS = [
    "sparsity.alpha",
    "sparsity.gof",
    "sparsity.top1",
    "sparsity.rare",
    "scale.related",
    "scale.facts",
    "sanity.retrieval",
    "crosslingual",
    "roleplay",
    "orderflip.flipped",
    "orderflip.norelation",
    "layers.kinds",
    "layers.middle",
    "memorisation",
    "validation.ekfac",
    "validation.rank32",
    "validation.refined",
    "counterfactual.lds",
    "counterfactual.leaveout",
]


def _summary_rows(repo: Path) -> dict[str, list[str]]:
    rows = {}
    for line in (repo / "results" / "summary.md").read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        if len(cells) == 7 and cells[0] not in ("id", "---"):
            rows[cells[0]] = cells
    return rows


def _models(repo: Path) -> list[str]:
    return yaml.safe_load((repo / "config" / "smoke.yaml").read_text())["models"]


def test_every_study_has_figures_and_metrics(smoke_run: Path) -> None:
    for study in STUDIES:
        out = smoke_run / "results" / "studies" / study
        pngs = list(out.glob("*.png"))
        assert pngs, f"{study}: no figure"
        for png in pngs:
            assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000, png
        metrics = json.loads((out / "metrics.json").read_text())
        assert "skipped" not in metrics, (study, metrics.get("skipped"))


def test_summary_has_a_row_per_claim_with_a_verdict(smoke_run: Path) -> None:
    rows = _summary_rows(smoke_run)
    assert sorted(rows) == sorted(CLAIMS)
    for rid, cells in rows.items():
        assert cells[4].strip("*") in ("holds", "does not hold", "inconclusive"), rid
        assert cells[3] and cells[3] != "study not run", rid


def test_top1_share_recomputed_from_the_score_table(smoke_run: Path) -> None:
    """The summary's top-1 % share is the median over queries of the largest model's table."""
    largest = _models(smoke_run)[-1]
    table = load_file(
        str(smoke_run / "results" / "scores" / largest / "table" / "scores.safetensors")
    )
    shares = []
    for row in table["total"].astype(np.float64):
        pos = np.clip(row, 0, None)
        k = math.ceil(0.01 * row.size)
        shares.append(np.sort(pos)[::-1][:k].sum() / pos.sum())
    cell = _summary_rows(smoke_run)["sparsity.top1"][3]
    assert f"median {float(np.median(shares)):.3g}" in cell, (cell, np.median(shares))


def test_retrieval_mrr_recomputed_from_the_score_table(smoke_run: Path) -> None:
    """EK-FAC MRR of the ground-truth documents on simple English fact queries, brute force."""
    queries = pd.read_parquet(smoke_run / "data" / "queries" / "queries.parquet")
    simple = queries[
        queries["tags"].apply(lambda t: "factual" in t and "translation" not in t)
        & (queries["language"] == "en")
        & (queries["order"].fillna("forward") == "forward")
    ]
    retrieval = pd.read_csv(smoke_run / "results" / "studies" / "scale" / "retrieval.csv")
    for model in _models(smoke_run):
        table = load_file(
            str(smoke_run / "results" / "scores" / model / "table" / "scores.safetensors")
        )
        names = json.loads(
            (smoke_run / "results" / "scores" / model / "table" / "index.json").read_text()
        )["queries"]
        rrs = []
        for name, props in zip(simple["name"], simple["proponents"]):
            scores = table["total"][names.index(name)]
            ranked = [
                int(table["doc_id"][i])
                for i in sorted(range(len(scores)), key=lambda i: (-scores[i], table["doc_id"][i]))
            ]
            rrs.append(1.0 / (1 + min(ranked.index(int(p)) for p in props)))
        ours = retrieval[(retrieval["model"] == model) & (retrieval["method"] == "ekfac")][
            "mrr"
        ].item()
        assert ours == pytest.approx(np.mean(rrs), abs=1e-4)


def test_snakemake_report_is_self_contained(smoke_run: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.html"
    snakemake(smoke_run, "--configfile", "config/smoke.yaml", "--report", str(report))
    html = report.read_text(errors="replace")
    assert report.stat().st_size > 100_000
    for name in ("sparsity_", "orderflip.png", "estimators.png", "summary.md"):
        assert name in html, name
