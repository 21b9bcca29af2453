"""Reading the workflow's artifacts into tidy tables, and the shared notions of the studies.

Formats: docs/design.md ("Artifacts"). Every study works on long/tidy pandas frames:
``scores`` = (model, query, doc_id, influence), ``top`` = scores + rank (1 = most influential).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from llm_influence.artifacts import as_list
from llm_influence.artifacts.scores import ScoreTable

# query kinds (tags of config/queries/*.yaml), in the order used to pick a query's main kind
KINDS = ("memorisation", "factual", "math", "code", "translation", "role-play", "synthetic-order")
RELATIONS = ("related", "token_overlap", "unrelated")
_LAYER_RE = re.compile(r"(?:^|\.)(?:layers|h|layer|blocks)\.(\d+)(?:\.|$)")


def norm_tag(tag: str) -> str:
    """``Role_Play`` / ``roleplay`` / ``role-play`` -> ``roleplay`` (tags compared loosely)."""
    return re.sub(r"[^a-z0-9]", "", str(tag).lower())


def has_tag(tags: Iterable[str] | None, tag: str) -> bool:
    return tags is not None and norm_tag(tag) in {norm_tag(t) for t in tags}


def query_kind(tags: Iterable[str] | None) -> str:
    """The first of :data:`KINDS` among the tags (``other`` when none)."""
    for kind in KINDS:
        if has_tag(tags, kind):
            return kind
    return "other"


def scores_frame(tables: Mapping[str, ScoreTable]) -> pd.DataFrame:
    """Long table (model, query, doc_id, influence) of every score of every model."""
    frames = []
    for model, t in tables.items():
        q, n = t.total.shape
        frames.append(
            pd.DataFrame(
                {
                    "model": model,
                    "query": np.repeat(np.asarray(t.queries, dtype=object), n),
                    "doc_id": np.tile(t.doc_id, q),
                    "influence": t.total.ravel(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def top_documents(scores: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k most influential documents per (model, query), rank 1 = best, ties by doc_id."""
    s = scores.sort_values(
        ["model", "query", "influence", "doc_id"], ascending=[True, True, False, True]
    )
    s = s.groupby(["model", "query"], sort=False).head(k).copy()
    s["rank"] = s.groupby(["model", "query"], sort=False).cumcount() + 1
    return s.reset_index(drop=True)


def query_facts(queries: pd.DataFrame, manifest: pd.DataFrame) -> dict[str, set[str]]:
    """A query's facts: its own ``fact_ids``/``fact_id`` column when present, else the union of its
    ground-truth proponents' manifest fact_ids."""
    by_doc = dict(zip(manifest["doc_id"].astype(int), manifest["fact_ids"]))
    out: dict[str, set[str]] = {}
    for _, row in queries.iterrows():
        facts: set[str] = set()
        for col in ("fact_ids", "fact_id", "facts"):
            if col in queries.columns:
                facts |= {str(f) for f in as_list(row[col])}
        if not facts:
            for d in row["proponents"]:
                facts |= {str(f) for f in by_doc.get(int(d), [])}
        out[str(row["name"])] = facts
    return out


def query_categories(
    queries: pd.DataFrame, manifest: pd.DataFrame, related_categories: Mapping[str, Sequence[str]]
) -> dict[str, set[str]]:
    """Categories thematically related to each query: its proponents' categories plus the
    configured ``related_categories[tag]`` for each of its tags."""
    cat = dict(zip(manifest["doc_id"].astype(int), manifest["category"].astype(str)))
    norm_map = {norm_tag(k): set(v) for k, v in related_categories.items()}
    out = {}
    for _, row in queries.iterrows():
        cats = {cat[int(d)] for d in row["proponents"] if int(d) in cat}
        for t in row["tags"]:
            cats |= norm_map.get(norm_tag(t), set())
        out[str(row["name"])] = cats
    return out


def can_be_related(
    queries: pd.DataFrame, manifest: pd.DataFrame, related_categories: Mapping[str, Sequence[str]]
) -> bool:
    """Whether any document can be classed ``related`` to any query (:func:`classify_relations`):
    some query has ground-truth proponents or facts stated in the corpus, or a related category
    the manifest holds. False on an ``hf`` corpus (one category, no facts): a related share of 0
    there says nothing about the models."""
    corpus_facts = {str(f) for fs in manifest["fact_ids"] for f in as_list(fs)}
    corpus_cats = set(manifest["category"].astype(str))
    if any(len(as_list(p)) for p in queries["proponents"]):
        return True
    if any(f & corpus_facts for f in query_facts(queries, manifest).values()):
        return True
    cats = query_categories(queries, manifest, related_categories)
    return any(c & corpus_cats for c in cats.values())


NO_RELATED = (
    "no query has ground-truth documents or a related category in this corpus "
    "(e.g. an hf corpus): related shares not measurable"
)


_WORD = re.compile(r"\w\w+", re.UNICODE)


def words(text: str) -> set[str]:
    return set(_WORD.findall(str(text).lower()))


def content_vocabulary(documents: pd.DataFrame, df_max: float) -> set[str]:
    """Words (≥ 2 word characters, lowercased) present in at most ``df_max`` of the documents:
    the corpus's frequent words (function words, template words) are not content."""
    from sklearn.feature_extraction.text import CountVectorizer

    vec = CountVectorizer(binary=True, lowercase=True, token_pattern=r"(?u)\w\w+")
    mat = vec.fit_transform(documents["text"].astype(str))
    df = np.asarray(mat.sum(axis=0)).ravel() / max(mat.shape[0], 1)
    vocab = np.asarray(vec.get_feature_names_out())
    return set(vocab[df <= df_max])


def classify_relations(
    top: pd.DataFrame,
    queries: pd.DataFrame,
    documents: pd.DataFrame,
    manifest: pd.DataFrame,
    *,
    content_df_max: float = 0.1,
    related_categories: Mapping[str, Sequence[str]] | None = None,
) -> pd.DataFrame:
    """Add ``relation`` ∈ {related, token_overlap, unrelated} and ``category`` to a top table.

    related: the document shares a fact id with the query, is one of its proponents, or its
    manifest category is thematically related (see :func:`query_categories`); token_overlap: not
    related but shares at least one content word (:func:`content_vocabulary`) with the query's
    prompt + completion; unrelated: neither.
    """
    facts = query_facts(queries, manifest)
    cats = query_categories(queries, manifest, related_categories or {})
    props = {str(n): {int(d) for d in p} for n, p in zip(queries["name"], queries["proponents"])}
    content = content_vocabulary(documents, content_df_max)
    text = dict(zip(documents["doc_id"].astype(int), documents["text"].astype(str)))
    man = manifest.set_index(manifest["doc_id"].astype(int))
    qwords = {
        str(r["name"]): words(f"{r['prompt']} {r['completion']}") & content
        for _, r in queries.iterrows()
    }
    doc_words: dict[int, set[str]] = {}
    rel, category = [], []
    for q, d in zip(top["query"].astype(str), top["doc_id"].astype(int)):
        c = str(man.at[d, "category"]) if d in man.index else "unknown"
        f = set(map(str, man.at[d, "fact_ids"])) if d in man.index else set()
        category.append(c)
        if d in props.get(q, set()) or (f & facts.get(q, set())) or c in cats.get(q, set()):
            rel.append("related")
            continue
        if d not in doc_words:
            doc_words[d] = words(text.get(d, "")) & content
        rel.append("token_overlap" if doc_words[d] & qwords.get(q, set()) else "unrelated")
    out = top.copy()
    out["category"] = category
    out["relation"] = pd.Categorical(rel, categories=list(RELATIONS))
    return out


def relation_shares(classified: pd.DataFrame, models: Sequence[str]) -> pd.DataFrame:
    """Share of each relation among the top documents, averaged over queries, per model."""
    per_q = (
        classified.groupby(["model", "query"], observed=False)["relation"]
        .value_counts(normalize=True)
        .rename("share")
        .reset_index()
    )
    out = per_q.groupby(["model", "relation"], observed=False)["share"].mean().reset_index()
    out["model"] = pd.Categorical(out["model"], categories=list(models))
    return out.sort_values(["model", "relation"]).reset_index(drop=True)


def layer_index(module: str) -> int:
    """Integer after ``layers.``/``h.`` in a module name (docs/design.md "Module names")."""
    m = _LAYER_RE.search(module)
    if not m:
        raise ValueError(f"no layer index in module name {module!r}")
    return int(m.group(1))


def increasing(values: Sequence[float]) -> bool | None:
    """True if the last value exceeds the first and the sequence never drops by more than the
    spread's 10 % (a tolerant 'rises with size'); None with fewer than two finite values."""
    v = [float(x) for x in values if x is not None and np.isfinite(x)]
    if len(v) < 2:
        return None
    tol = 0.1 * (max(v) - min(v))
    return v[-1] > v[0] and all(b >= a - tol for a, b in zip(v, v[1:]))
