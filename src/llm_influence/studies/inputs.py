"""What a study job reads, each artifact loaded at most once per job.

:class:`StudyInputs` wraps the rule's inputs (docs/design.md "Artifacts"): ``scores`` (the
per-model ``results/scores/{model}/table`` dirs, in the order of ``config["models"]``),
``queries``, ``corpus``, ``tfidf`` (optional) and ``models`` (optional; their ``metrics.json``
label the sizes), and the output directory ``out`` the study writes into.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from llm_influence.artifacts.corpus import read_documents, read_manifest
from llm_influence.artifacts.queries import read_queries
from llm_influence.artifacts.scores import ScoreTable, load_tables, read_tokens, table_dirs
from llm_influence.artifacts.tfidf import read_candidates
from llm_influence.artifacts.tokenized import read_model_metrics
from llm_influence.studies import data as D
from llm_influence.workflow.context import StageContext


@dataclass
class StudyInputs:
    models: list[str]
    paths: dict[str, Any]  # rule input name -> Path or list[Path]
    out: Path
    seed: int = 0
    threads: int = 1
    _tables: dict[bool, dict[str, ScoreTable]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_context(cls, ctx: StageContext) -> StudyInputs:
        out = Path(ctx.output["study"])
        out.mkdir(parents=True, exist_ok=True)
        return cls(
            models=[str(m) for m in ctx.config["models"]],
            paths=dict(ctx.input),
            out=out,
            seed=ctx.seed,
            threads=max(1, int(ctx.threads)),
        )

    def has(self, name: str) -> bool:
        return bool(self.paths.get(name))

    def tables(self, with_layers: bool = False) -> dict[str, ScoreTable]:
        """The per-model score tables (``layers`` only when asked: they are the large part)."""
        if with_layers not in self._tables:
            self._tables[with_layers] = load_tables(
                self.models, self.paths["scores"], with_layers=with_layers
            )
        return self._tables[with_layers]

    def scored_on(self) -> dict[str, Any] | None:
        """What the study's score tables cover (None when it read none): every training sequence,
        or only the TF-IDF candidates (``scores.candidates: tfidf``), which a study of the full
        distribution must say (metrics and summary)."""
        if not self._tables:
            return None
        tables = next(iter(self._tables.values()))
        return {
            model: {"candidates": t.candidates, "sequences": int(t.total.shape[1]),
                    "n_train": t.n_train}
            for model, t in tables.items()
        }  # fmt: skip

    @cached_property
    def scores(self) -> pd.DataFrame:
        """Long table (model, query, doc_id, influence) of every score of every model."""
        return D.scores_frame(self.tables())

    @cached_property
    def queries(self) -> pd.DataFrame:
        return read_queries(self.paths["queries"])

    @cached_property
    def documents(self) -> pd.DataFrame:
        return read_documents(self.paths["corpus"])

    @cached_property
    def manifest(self) -> pd.DataFrame:
        return read_manifest(self.paths["corpus"])

    @cached_property
    def candidates(self) -> pd.DataFrame | None:
        """TF-IDF candidates, or None when the job has no ``tfidf`` input."""
        return read_candidates(self.paths["tfidf"]) if self.has("tfidf") else None

    def tokens(self) -> dict[str, pd.DataFrame]:
        """Per-token scores of each model's table (read once each, when a study asks)."""
        return {m: read_tokens(d) for m, d in zip(self.models, table_dirs(self.paths["scores"]))}

    @cached_property
    def n_params(self) -> list[int | None] | None:
        """n_params of each model from the model dirs' metrics.json (None without ``models``)."""
        if not self.has("models"):
            return None
        return [
            (read_model_metrics(d) or {}).get("n_params") for d in table_dirs(self.paths["models"])
        ]

    def queries_with(self, tag: str) -> pd.DataFrame:
        q = self.queries
        return q[[D.has_tag(t, tag) for t in q["tags"]]].reset_index(drop=True)

    def tagged_top(self, cfg: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame | None, dict]:
        """The queries tagged ``cfg["tag"]``, their top-``cfg["top_k"]`` documents by influence
        (every model; None without such queries) and the metrics a study of them starts from."""
        queries = self.queries_with(str(cfg["tag"]))
        k = int(cfg["top_k"])
        names = list(queries["name"])
        metrics: dict[str, Any] = {"top_k": k, "queries": names}
        if not names:
            return queries, None, metrics
        return queries, D.top_documents(self.scores[self.scores["query"].isin(names)], k), metrics

    def classify(
        self, top: pd.DataFrame, queries: pd.DataFrame, cfg: dict[str, Any]
    ) -> pd.DataFrame:
        """Relation (related / token_overlap / unrelated) and category of each top document."""
        return D.classify_relations(
            top, queries, self.documents, self.manifest,
            content_df_max=float(cfg["content_df_max"]),
            related_categories=cfg["related_categories"] or {},
        )  # fmt: skip

    def related_possible(self, queries: pd.DataFrame, cfg: dict[str, Any]) -> bool:
        """False when no document can be ``related`` to any query (an hf corpus): the related
        shares are then recorded as null, and the summary calls the claim inconclusive."""
        return D.can_be_related(queries, self.manifest, cfg["related_categories"] or {})
