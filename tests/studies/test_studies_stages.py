"""Every study entry point runs on tiny constructed artifacts and writes its figure + metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llm_influence.studies import stage
from llm_influence.studies.registry import SHARED
from llm_influence.utils.io import read_json

EXPECTED = {
    "sparsity": ["sparsity_tiny.png", "sparsity_small.png", "stats.parquet"],
    "scale": ["scale.png", "top.parquet", "shares.parquet"],
    "crosslingual": ["crosslingual.png", "pairs.parquet", "ratios.parquet"],
    "roleplay": ["roleplay_categories.png", "roleplay_relations.png", "categories.parquet"],
    "orderflip": ["orderflip.png", "docs.parquet", "means.parquet"],
    "layers": ["layers_tiny.png", "layers_small.png", "profiles.parquet", "rerank.parquet"],
    "tokens": ["tokens_tiny.png", "tokens_tiny.html", "tokens_small.png"],
    "memorisation": ["memorisation.png", "top.parquet"],
}


@pytest.mark.parametrize("name", SHARED)  # a registered study without EXPECTED files fails
def test_study_outputs(study_dirs, name):
    out = study_dirs[name]
    for f in EXPECTED[name] + ["metrics.json"]:
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    m = read_json(out / "metrics.json")
    assert m["study"] == name and m["models"] == ["tiny", "small"]
    assert "skipped" not in m


def test_study_metrics_follow_planted_signal(study_dirs, artifacts):
    scale = read_json(study_dirs["scale"] / "metrics.json")
    assert scale["fact_hit_share"] == [1.0, 1.0]
    assert scale["retrieval"]["small"]["mrr"] == 1.0
    ret = pd.read_csv(study_dirs["scale"] / "retrieval.csv")
    assert set(ret["method"]) == {"ekfac", "graddot", "tfidf"}
    # TF-IDF ranks its candidates first (in candidate order), then everything else by doc id:
    # the reciprocal rank of each simple fact query, computed directly from the candidates table
    queries = pd.read_parquet(artifacts["queries"] / "queries.parquet")
    cand = pd.read_parquet(artifacts["tfidf"] / "candidates.parquet")
    simple = queries[
        queries["tags"].apply(lambda t: "factual" in t and "translation" not in t)
        & (queries["language"] == "en")
    ]
    all_docs = pd.read_parquet(artifacts["corpus"] / "documents.parquet")["doc_id"].tolist()
    rrs = []
    for name, props in zip(simple["name"], simple["proponents"]):
        if len(props) == 0:
            continue
        listed = list(cand.loc[cand["query"] == name].sort_values("rank")["doc_id"])
        order = listed + sorted(set(all_docs) - set(listed))
        rrs.append(1.0 / (1 + min(order.index(int(p)) for p in props)))
    for value in ret.loc[ret["method"] == "tfidf", "mrr"]:
        assert value == pytest.approx(np.mean(rrs), abs=1e-4)
    cl = read_json(study_dirs["crosslingual"] / "metrics.json")
    assert cl["ratio"][0] < cl["ratio"][1]
    of = read_json(study_dirs["orderflip"] / "metrics.json")
    assert all(r < 0.1 for r in of["flipped_over_forward"])
    mem = read_json(study_dirs["memorisation"] / "metrics.json")
    assert mem["query_share"] == [1.0, 1.0]
    lay = read_json(study_dirs["layers"] / "metrics.json")["per_model"]["small"]["centre_by_kind"]
    assert lay["factual"] > lay["math"]
    html = (study_dirs["tokens"] / "tokens_tiny.html").read_text()
    assert "tok&lt;0&gt;&amp;" in html and "<script" not in html


def test_summary(study_dirs, tmp_path):
    from llm_influence.workflow.context import StageContext

    out = tmp_path / "results" / "summary.md"
    report = _studies_conftest().REPORT_CFG
    ctx = StageContext(rule="report", config={"models": ["tiny", "small"], "report": report},
                       input={"studies": list(study_dirs.values())}, output={"summary": out})  # fmt: skip
    res = stage.summary(ctx)
    text = out.read_text()
    assert res["rows"] >= 12
    for rid in ("sparsity.alpha", "sparsity.top1", "scale.related", "crosslingual", "roleplay",
                "orderflip.flipped", "layers.kinds", "memorisation"):  # fmt: skip
        assert f"| {rid} |" in text
    assert "**holds**" in text
    # verdicts come from the tables: the planted cross-lingual rise and flipped-order drop hold
    assert (
        "| crosslingual |" in text
        and text.split("| crosslingual |")[1].split("\n")[0].count("**holds**") == 1
    )
    # rerun: byte-identical
    stage.summary(ctx)
    assert out.read_text() == text


def _studies_conftest():
    """This directory's conftest by path: ``import conftest`` may find another directory's."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "studies_conftest", Path(__file__).with_name("conftest.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Recording(dict):
    """A config section that records the keys read from it."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)


def _report_keys_read(study_dirs) -> set[str]:
    """The report keys the summary reads: every claim's rule and its evaluation on the studies."""
    from llm_influence.studies.summary import build_summary

    metrics = {n: read_json(d / "metrics.json") for n, d in study_dirs.items()}
    report = _Recording(_studies_conftest().REPORT_CFG)
    build_summary(metrics, ["tiny", "small"], report)
    return report.read


def test_config_blocks_match_the_code(study_dirs):
    """The committed studies/report blocks name exactly the keys the stages read."""
    from pathlib import Path

    import yaml

    from_conftest = {
        "sparsity", "scale", "crosslingual", "roleplay", "orderflip", "layers", "tokens", "memorisation",
    }  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    for name in ("config.yaml", "smoke.yaml"):
        cfg = yaml.safe_load((root / "config" / name).read_text())
        studies = cfg["studies"]
        assert from_conftest <= set(studies)
        assert set(stage.STUDIES) == from_conftest
        assert set(cfg["report"]) == _report_keys_read(study_dirs)
        STUDIES_CFG = _studies_conftest().STUDIES_CFG  # the keys the tests exercise

        for study in from_conftest:
            assert set(studies[study]) == set(STUDIES_CFG[study]), (name, study)


def test_study_without_its_queries_writes_placeholder(artifacts, tmp_path):
    """A query set without role-play queries: metrics say why, the figure names still exist."""
    import pandas as pd

    from llm_influence.workflow.context import StageContext

    qdir = tmp_path / "queries"
    qdir.mkdir()
    q = pd.read_parquet(artifacts["queries"] / "queries.parquet")
    q[q["name"] != "shutdown"].to_parquet(qdir / "queries.parquet", index=False)
    out = tmp_path / "roleplay"
    out.mkdir()
    studies = _studies_conftest().STUDIES_CFG  # a complete studies block (no defaults in the code)
    ctx = StageContext(rule="roleplay", config={"seed": 0, "models": ["tiny", "small"], "studies": studies},
                       input={**artifacts, "queries": qdir}, output={"study": out})  # fmt: skip
    m = stage.roleplay(ctx)
    assert m["skipped"] == "no role-play queries"
    assert (out / "roleplay_categories.png").stat().st_size > 0


def test_study_on_tfidf_candidates_says_so(artifacts, tmp_path):
    """A table scored on the TF-IDF candidates only (scores.candidates: tfidf): the study runs on
    what was scored and records it; the summary names the study and the sequences it saw."""
    import shutil

    import torch

    conf = _studies_conftest()  # this directory's conftest (``import conftest`` may find another)
    MODELS, STUDIES_CFG = conf.MODELS, conf.STUDIES_CFG  # noqa: N806

    from llm_influence.artifacts.scores import load_score_table, write_score_table
    from llm_influence.studies.summary import build_summary, candidates_only, render_markdown
    from llm_influence.workflow.context import StageContext

    dirs = []
    for model, src in zip(MODELS, artifacts["scores"]):
        t = load_score_table(src)
        keep = np.arange(0, t.total.shape[1], 3)  # a third of the sequences
        out = tmp_path / model / "table"
        write_score_table(
            out,
            {"total": torch.from_numpy(t.total[:, keep]).float(),
             "layers": torch.from_numpy(t.layers[:, keep]).float(),
             "graddot": torch.from_numpy(t.graddot[:, keep]).float(),
             "doc_id": torch.from_numpy(t.doc_id[keep]),
             "candidate": torch.ones(len(t.queries), len(keep), dtype=torch.uint8)},
            queries=t.queries, modules=t.modules,
            estimators=[("total", "ekfac"), ("graddot", "graddot")],
            candidates="tfidf", n_train=t.total.shape[1],
        )  # fmt: skip
        shutil.copy(src / "tokens.parquet", out / "tokens.parquet")
        dirs.append(out)
    out = tmp_path / "sparsity"
    out.mkdir()
    ctx = StageContext(rule="sparsity", config={"seed": 0, "models": MODELS, "studies": STUDIES_CFG},
                       input={**artifacts, "scores": dirs}, output={"study": out})  # fmt: skip
    stage.STUDIES["sparsity"](ctx)
    m = read_json(out / "metrics.json")
    for model, d in zip(MODELS, dirs):
        seen = load_score_table(d)
        assert m["scored_on"][model] == {"candidates": "tfidf", "sequences": len(seen.doc_id),
                                         "n_train": seen.n_train}  # fmt: skip
    notes = candidates_only({"sparsity": m})
    report = _studies_conftest().REPORT_CFG
    text = render_markdown(build_summary({"sparsity": m}, MODELS, report), MODELS, notes)
    assert "Scored on TF-IDF candidates only" in text and f"sparsity ({notes['sparsity']}" in text
