"""Every study and the summary on an ``hf`` corpus (config/pythia.yaml): one manifest category
``hf``, no facts, no ground-truth proponents. Claims that need ground truth or categories must be
inconclusive (with the reason), never "does not hold", and nothing may crash."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from conftest import MODELS, REPORT_CFG, STUDIES_CFG, build_artifacts

from llm_influence.studies import stage
from llm_influence.studies.data import NO_RELATED
from llm_influence.workflow.context import StageContext


def _as_hf(art: dict) -> dict:
    corpus, queries = Path(art["corpus"]), Path(art["queries"])
    man = pd.read_parquet(corpus / "manifest.parquet")
    man["category"] = "hf"
    man["fact_ids"] = [[] for _ in range(len(man))]
    man["order"] = None
    man["template"] = "hf"
    man.to_parquet(corpus / "manifest.parquet", index=False)
    (corpus / "world.json").write_text(json.dumps({"source": "hf", "facts": [], "passages": []}))
    q = pd.read_parquet(queries / "queries.parquet")
    q["proponents"] = [[] for _ in range(len(q))]
    q.to_parquet(queries / "queries.parquet", index=False)
    return art


def test_studies_and_summary_on_an_hf_corpus(tmp_path: Path) -> None:
    art = _as_hf(build_artifacts(tmp_path / "art"))
    dirs = []
    for name, fn in stage.STUDIES.items():
        out = tmp_path / "studies" / name
        out.mkdir(parents=True)
        fn(StageContext(rule=name, config={"seed": 0, "models": MODELS, "studies": STUDIES_CFG},
                        input=dict(art), output={"study": out}))  # fmt: skip
        assert (out / "metrics.json").is_file(), name
        dirs.append(out)
    metrics = {d.name: json.loads((d / "metrics.json").read_text()) for d in dirs}
    # thematic relations cannot be seen without categories or facts: null, with the reason
    for study in ("scale", "roleplay"):
        assert metrics[study]["related_share"] == [None, None], study
        assert metrics[study]["related_skipped"] == NO_RELATED
    assert metrics["scale"]["n_fact_queries"] == 0
    assert "skipped" in metrics["orderflip"]
    # text-based studies still measure something
    assert metrics["memorisation"]["query_share"][-1] is not None
    assert "skipped" not in metrics["crosslingual"]

    summary = tmp_path / "summary.md"
    stage.summary(StageContext(rule="summary", config={"seed": 0, "models": MODELS,
                                                       "studies": STUDIES_CFG, "report": REPORT_CFG},
                               input={"studies": [str(d) for d in dirs]}, output={"summary": summary}))  # fmt: skip
    rows = {
        line.split("|")[1].strip(): line.split("|")[5].strip()
        for line in summary.read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| id")
    }
    for rid in (
        "scale.related",
        "scale.facts",
        "sanity.retrieval",
        "roleplay",
        "orderflip.flipped",
    ):
        assert rows[rid] == "**inconclusive**", rid
    assert NO_RELATED in summary.read_text()


def test_synthetic_corpus_keeps_its_related_shares(study_dirs) -> None:
    for study in ("scale", "roleplay"):
        m = json.loads((study_dirs[study] / "metrics.json").read_text())
        assert "related_skipped" not in m and all(x is not None for x in m["related_share"])
