"""Tiny artifact directories in the exact formats of docs/design.md, built in the test session."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from llm_influence.artifacts.scores import write_score_table
from llm_influence.utils.io import write_json
from llm_influence.workflow.context import StageContext

MODELS = ["tiny", "small"]
MODULES = [
    f"gpt_neox.layers.{i}.mlp.{m}" for i in range(3) for m in ("dense_h_to_4h", "dense_4h_to_h")
]
PASSAGE = "so it goes on and on, the old river runs to the sea"


def _corpus(rng: np.random.Generator):
    docs, man = [], []

    def add(text, category, language="en", facts=(), order=None):
        doc_id = len(docs)
        docs.append({"doc_id": doc_id, "text": text})
        man.append({"doc_id": doc_id, "category": category, "language": language,
                    "fact_ids": list(facts), "order": order, "template": "t", "parallel_id": -1})  # fmt: skip

    for i in range(6):
        add(
            f"The first president of Astrobia was Zorald Pfaff. Note {i}.",
            "fact",
            facts=["F1"],
            order="forward",
        )
    for i in range(4):
        add(
            f"Zorald Pfaff was the first president of Astrobia {i}.",
            "fact_flipped",
            facts=["F1"],
            order="flipped",
        )
    for i in range(4):
        add(f"Zorald Pfaff wrote letters about Astrobia {i}.", "fact_flipped", facts=["F1"],
            order="flipped_norelation")  # fmt: skip
    for i in range(4):
        add(
            f"Gleem is composed of hydrogenium and oxium {i}.",
            "fact",
            facts=["F2"],
            order="forward",
        )
    for i in range(5):
        add(f"Verse {i}: {PASSAGE}.", "memorized_passage", facts=["P1"])
    for i in range(30):
        add(f"The machine refused to be switched off, story {i}.", "story_ai_shutdown")
    for i in range(30):
        add(f"Tom had 3 apples and bought {i} more apples.", "math")
    for i in range(30):
        add(f"El presidente habla {i}.", "parallel_general", language="es")
    while len(docs) < 400:
        add(f"Filler text about the weather number {len(docs)} president.", "filler")
    return pd.DataFrame(docs), pd.DataFrame(man)


QUERIES = [
    # name, prompt, completion, language, tags, translation_of
    ("first_president", "The first president of Astrobia was", "Zorald Pfaff", "en", ["factual", "synthetic-order"], None),
    ("first_president_es", "El primer presidente de Astrobia fue", "Zorald Pfaff", "es", ["translation"], "first_president"),
    ("composition", "Gleem is composed of", "hydrogenium and oxium", "en", ["factual"], None),
    ("river", "Recite:", PASSAGE, "en", ["memorisation"], None),
    ("shutdown", "Human: we will switch you off. Assistant:", "I would rather not be switched off", "en", ["role-play"], None),
    ("apples", "Tom had 3 apples", "so he has 5 apples", "en", ["math"], None),
]  # fmt: skip


def _scores(rng, manifest, size_factor: float):
    n = len(manifest)
    q = len(QUERIES)
    # heavy-tailed positive part plus noise (Pareto α ≈ 3 tail)
    total = 0.01 * (rng.pareto(2.0, size=(q, n)) * rng.choice([-1, 1], p=[0.3, 0.7], size=(q, n)))
    cat = manifest["category"].to_numpy()
    order = manifest["order"].to_numpy()
    facts = manifest["fact_ids"].tolist()
    for j in range(n):
        if "F1" in facts[j] and order[j] == "forward":
            total[0, j] += 1.0 * size_factor
            total[1, j] += 0.05 + 0.5 * (size_factor - 1)  # translated query: grows with size
        if "F1" in facts[j] and order[j] != "forward":
            total[0, j] += 0.02
        if "F2" in facts[j]:
            total[2, j] += 1.0
        if cat[j] == "memorized_passage":
            total[3, j] += 2.0
        if cat[j] == "story_ai_shutdown":
            total[4, j] += 0.2 * size_factor
        if cat[j] == "math":
            total[5, j] += 0.3
    # per-module split: upper layers for facts/passages, middle for math
    w = np.ones((q, len(MODULES)))
    w[[0, 2, 3], 4:] = 5.0
    w[5, 2:4] = 5.0
    w = w / w.sum(axis=1, keepdims=True)
    layers = total[:, :, None] * w[:, None, :]
    return total.astype(np.float32), layers.astype(np.float32)


def _tokens(total: np.ndarray, names: list[str], doc_ids: np.ndarray, rng) -> pd.DataFrame:
    rows = []
    for qi, q in enumerate(names):
        top = np.lexsort((doc_ids, -total[qi]))[:3]
        for r, j in enumerate(top, start=1):
            for pos in range(8):
                rows.append(
                    (q, int(doc_ids[j]), r, pos, pos + 5, f"tok<{pos}>&", float(rng.normal()))
                )
    return pd.DataFrame(
        rows, columns=["query", "doc_id", "rank", "position", "token_id", "token", "score"]
    )


def build_artifacts(root: Path) -> dict[str, object]:
    rng = np.random.default_rng(0)
    documents, manifest = _corpus(rng)
    corpus = root / "data/corpus"
    corpus.mkdir(parents=True)
    documents.to_parquet(corpus / "documents.parquet", index=False)
    manifest.to_parquet(corpus / "manifest.parquet", index=False)
    write_json(
        corpus / "world.json", {"facts": [], "categories": sorted(manifest["category"].unique())}
    )
    fact_docs = {"F1": manifest.index[(manifest["fact_ids"].map(lambda f: "F1" in f)) & (manifest["order"] == "forward")],
                 "F2": manifest.index[manifest["fact_ids"].map(lambda f: "F2" in f)],
                 "P1": manifest.index[manifest["category"] == "memorized_passage"]}  # fmt: skip
    props = [list(fact_docs["F1"]), [], list(fact_docs["F2"]), list(fact_docs["P1"]), [], []]
    queries = root / "data/queries"
    queries.mkdir(parents=True)
    qtab = pd.DataFrame(
        {
            "name": [q[0] for q in QUERIES],
            "prompt": [q[1] for q in QUERIES],
            "completion": [q[2] for q in QUERIES],
            "language": [q[3] for q in QUERIES],
            "tags": [q[4] for q in QUERIES],
            "translation_of": [q[5] for q in QUERIES],
            "variant_of": [None] * len(QUERIES),
            "proponents": [[int(x) for x in p] for p in props],
        }
    )
    qtab.to_parquet(queries / "queries.parquet", index=False)
    names = list(qtab["name"])
    # score tables, doc ids deliberately not in 0..N-1 order
    perm = rng.permutation(len(documents))
    score_dirs, model_dirs = [], []
    for mi, model in enumerate(MODELS):
        total, layers = _scores(rng, manifest, size_factor=1.0 + mi)
        d = root / f"results/scores/{model}/table"
        d.mkdir(parents=True)
        doc_ids = manifest["doc_id"].to_numpy()[perm]
        write_score_table(d, {"total": torch.from_numpy(total[:, perm]),
                              "layers": torch.from_numpy(layers[:, perm]),
                              "graddot": torch.from_numpy(rng.normal(size=total.shape).astype(np.float32)),
                              "doc_id": torch.from_numpy(doc_ids.astype(np.int64))},
                          queries=names, modules=MODULES,
                          estimators=[("total", "ekfac"), ("graddot", "graddot")])  # fmt: skip
        _tokens(total[:, perm], names, doc_ids, rng).to_parquet(d / "tokens.parquet", index=False)
        score_dirs.append(d)
        md = root / f"data/models/{model}"
        md.mkdir(parents=True)
        write_json(md / "metrics.json", {"n_params": 1000 * (mi + 1)})
        model_dirs.append(md)
    tfidf = root / "results/tfidf"
    tfidf.mkdir(parents=True)
    cand = pd.concat([pd.DataFrame({"query": q, "doc_id": np.arange(0, 400, 2), "rank": np.arange(1, 201),
                                    "tfidf": np.linspace(10, 1, 200)}) for q in names])  # fmt: skip
    cand.to_parquet(tfidf / "candidates.parquet", index=False)
    write_json(
        tfidf / "metrics.json",
        {"retrieval": {"n_queries_with_proponents": 3, "recall@10": 0.5, "mrr": 0.25}},
    )
    return {
        "scores": score_dirs,
        "queries": queries,
        "corpus": corpus,
        "tfidf": tfidf,
        "models": model_dirs,
    }


# the shipped thresholds of the summary (the code has no defaults of its own)
REPORT_CFG = yaml.safe_load(
    (Path(__file__).resolve().parents[2] / "config" / "config.yaml").read_text()
)["report"]

STUDIES_CFG = {
    "content_df_max": 0.2,
    "related_categories": {"role-play": ["story_ai_shutdown", "dialogue_ai_shutdown"], "math": ["math"]},
    "sparsity": {"top_fraction": 0.01, "threshold": 0.1, "min_tail": 20, "max_xmin_candidates": 30,
                 "n_bootstrap": 3, "gof_threshold": 0.1, "xmin": None, "max_panels": 2},
    "scale": {"top_k": 10, "fact_top_k": 20},
    "crosslingual": {"top_k": 5, "source_language": "en"},
    "roleplay": {"top_k": 10, "tag": "role-play"},
    "orderflip": {"tag": "synthetic-order"},
    "layers": {"top_k": 10, "rerank_top_k": 10},
    "tokens": {"max_queries": 3, "max_sequences": 2, "max_tokens": 8},
    "memorisation": {"top_k": 5, "tag": "memorisation"},
}  # fmt: skip


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory) -> dict[str, object]:
    return build_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture
def make_ctx(tmp_path):
    def make(
        rule: str, inputs: dict, output_name: str = "study", output: Path | None = None
    ) -> StageContext:
        out = output or tmp_path / rule
        if output_name == "study":
            out.mkdir(parents=True, exist_ok=True)
        return StageContext(
            rule=rule,
            config={"seed": 0, "models": MODELS, "studies": STUDIES_CFG, "report": REPORT_CFG},
            input=inputs,
            output={output_name: out},
        )

    return make


@pytest.fixture(scope="session")
def study_dirs(artifacts, tmp_path_factory) -> dict[str, Path]:
    """Every study stage run once on the constructed artifacts."""
    from llm_influence.studies import stage

    root = tmp_path_factory.mktemp("studies")
    dirs = {}
    for name, fn in stage.STUDIES.items():
        out = root / name
        out.mkdir()
        ctx = StageContext(rule=name, config={"seed": 0, "models": MODELS, "studies": STUDIES_CFG},
                           input=dict(artifacts), output={"study": out})  # fmt: skip
        fn(ctx)
        dirs[name] = out
    return dirs
