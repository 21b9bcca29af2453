"""``config['counterfactual']`` as a dataclass, and the checks that must pass before any job runs."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

RANDOM_CONTROL = "random"  # leave-out "method" that removes a seeded random set of documents
TFIDF = "tfidf"  # the BM25 baseline, read from the tfidf outputs

# The part of the section each retraining job is given (and that Snakemake and DVC track for it):
# adding subsets, changing the bootstrap or the leave-out size reruns no subset retraining.
SUBSET_KEYS = ("alpha", "seeds", "keep_models")
LEAVEOUT_KEYS = ("remove_k", "leaveout_tag", "keep_models")


@dataclass
class CounterfactualSpec:
    models: list[str]  # models retrained (trained here from scratch; not pretrained ones)
    subsets: int  # random subsets S_j for the LDS (one retraining job each)
    alpha: float  # share of the training documents each subset keeps, in (0, 1)
    seeds: int  # retrainings per subset (seeds seed, seed+1, ...); f is their mean
    remove_k: int  # leave-top-k-out: top documents per query removed by each method
    leaveout_tag: str  # query tag of the leave-out queries (the fact queries)
    n_bootstrap: int  # bootstrap resamples for the intervals
    keep_models: bool  # also save each retrained model's weights

    @classmethod
    def from_config(cls, block: dict[str, Any]) -> CounterfactualSpec:
        known = {f.name for f in fields(cls)}
        unknown, missing = sorted(set(block) - known), sorted(known - set(block))
        if unknown or missing:
            raise ValueError(f"counterfactual: unknown key(s) {unknown}, missing key(s) {missing}")
        return cls(**block)

    def __post_init__(self) -> None:
        checks = [
            (0.0 < float(self.alpha) < 1.0, "alpha", f"must be in (0, 1), got {self.alpha}"),
            (int(self.subsets) >= 2, "subsets", f"must be >= 2 (Spearman), got {self.subsets}"),
            (int(self.seeds) >= 1, "seeds", f"must be >= 1, got {self.seeds}"),
            (int(self.remove_k) >= 1, "remove_k", f"must be >= 1, got {self.remove_k}"),
            (int(self.n_bootstrap) >= 1, "n_bootstrap", f"must be >= 1, got {self.n_bootstrap}"),
        ]
        for ok, key, msg in checks:
            if not ok:
                raise ValueError(f"counterfactual.{key}: {msg}")


def job_settings(block: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``{key: block[key]}`` for one retraining job's ``keys`` (a missing key is named)."""
    missing = [k for k in keys if k not in block]
    if missing:
        raise ValueError(f"counterfactual: missing key(s) {missing}")
    return {k: block[k] for k in keys}


def counterfactual_errors(config: dict[str, Any], n_train_documents: int | None) -> list[str]:
    """Problems of ``config['counterfactual']`` that the schema cannot see (one line each):
    a model that is not defined or not trained here, a removal larger than the training set."""
    block = config.get("counterfactual", {})
    try:
        spec = CounterfactualSpec.from_config(dict(block))
    except (ValueError, TypeError) as exc:
        return [str(exc)]
    errors = []
    defined = config.get("pretrain", {}).get("models", {}) or {}
    for name in spec.models:
        if name not in defined:
            errors.append(
                f"counterfactual.models: {name!r} is not defined in pretrain.models "
                f"(defined: {sorted(defined)})"
            )
        elif (defined[name] or {}).get("pretrained"):
            errors.append(
                f"counterfactual.models: {name!r} is pretrained "
                f"({defined[name]['pretrained']}): there is no recipe to retrain it from scratch"
            )
    candidates = (config.get("scores") or {}).get("candidates", "all")
    if spec.models and candidates != "all":
        errors.append(
            f"counterfactual.models: the LDS and leave-out rank every training document, but "
            f"scores.candidates={candidates!r} scores only the TF-IDF candidates (use 'all')"
        )
    n_remove = spec.remove_k * max(1, n_leaveout_queries(config, spec.leaveout_tag) or 1)
    if n_train_documents is not None and n_remove >= n_train_documents:
        errors.append(
            f"counterfactual.remove_k={spec.remove_k}: the leave-out removes {n_remove} documents "
            f"but the training set has only {n_train_documents}"
        )
    return errors


def n_leaveout_queries(config: dict[str, Any], tag: str) -> int | None:
    """How many queries of the query file carry ``tag`` (None when the file cannot be read)."""
    from llm_influence.queries import load_query_set

    try:
        queries = load_query_set(config["queries"]["file"])
    except (OSError, KeyError, ValueError, TypeError):
        return None
    return sum(1 for q in queries if norm_tag(tag) in {norm_tag(t) for t in q.tags})


def norm_tag(tag: str) -> str:
    """Tags compare loosely (``Role_Play`` = ``role-play``), as in the studies."""
    return "".join(c for c in str(tag).lower() if c.isalnum())


def expected_train_documents(
    config: dict[str, Any], tokenized_meta: str = "data/tokenized/meta.json"
) -> int | None:
    """Training documents of the run before any job: from an existing tokenisation, else from the
    synthetic corpus size minus the held-out share (None for an ``hf`` corpus not yet tokenised)."""
    import json
    from pathlib import Path

    meta = Path(tokenized_meta)
    if meta.is_file():
        data = json.loads(meta.read_text())
        return int(data["n_documents"]) - int(data["n_heldout_documents"])
    corpus = config.get("corpus", {})
    if corpus.get("source") != "synthetic":
        return None
    n = int(corpus["synthetic"]["n_documents"])
    return n - int(round(float(config["tokenizer"]["heldout_fraction"]) * n))


def validate_counterfactual(config: dict[str, Any]) -> None:
    """Raise before the DAG is built when the counterfactual section cannot run (Snakefile)."""
    from llm_influence.workflow.config import ConfigError

    errors = counterfactual_errors(config, expected_train_documents(config))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
