"""Headline metrics: the few flat numbers per stage that DVC shows and compares.

A stage's ``metrics.json`` is a detailed dump (settings, per-query lists, nested tables); declared
as DVC metrics, thirteen such files made ``dvc metrics show`` one line of about 20,000 characters.
So a rule whose ``params.metrics`` names ``headline.json`` gets that file written by the runner
from its ``metrics.json``, choosing the entries of its ``params.headline`` or else of
:data:`HEADLINES` here, and only ``headline.json`` is a DVC metric; ``metrics.json`` stays an
ordinary file inside the output.

A spec maps a headline name to a dotted path into ``metrics.json``; ``*`` matches every key at its
level (one per model, say) and the match is appended to the name. A list that runs parallel to the
metrics' ``models`` is split by model, a mapping by its keys: ``{"share": "related_share"}`` with
``models: [tiny, small]`` gives ``share.tiny`` and ``share.small``. A path that does not exist is
left out (a study skipped for lack of ground truth has no such number) and logged; the smoke-run
test checks that every path exists on the smoke config.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

HEADLINE_FILE = "headline.json"
DETAIL_FILE = "metrics.json"

PER_MODEL = "per_model.*."

HEADLINES: dict[str, dict[str, str]] = {
    "pretrain": {
        "heldout_loss": "heldout_loss",
        "heldout_ppl": "heldout_ppl",
        "train_loss": "final_train_loss",
        "fact_accuracy": "fact_accuracy",
        "n_params": "n_params",
    },
    "tfidf": {"recall@10": "retrieval.recall@10", "mrr": "retrieval.mrr"},
    "study:sparsity": {
        "alpha_median": PER_MODEL + "alpha_median",
        "top1pct_share": PER_MODEL + "top_share_median",
        "above_0.1": PER_MODEL + "frac_above_threshold_mean",
        "powerlaw_rejected": PER_MODEL + "n_rejected",
    },
    "study:scale": {
        "related_share": "related_share",
        "fact_in_top100": "fact_hit_share",
        "recall@10": "retrieval.*.recall@10",
        "mrr": "retrieval.*.mrr",
    },
    "study:crosslingual": {"ratio": "ratio"},
    "study:roleplay": {"related_share": "related_share"},
    "study:orderflip": {
        "flipped/forward": "flipped_over_forward",
        "norelation/forward": "norelation_over_forward",
    },
    "study:layers": {
        "related_lower": PER_MODEL + "related_by_third.lower",
        "related_middle": PER_MODEL + "related_by_third.middle",
        "related_upper": PER_MODEL + "related_by_third.upper",
    },
    "study:tokens": {"top10pct_token_share": PER_MODEL + "top10pct_token_share_mean"},
    "study:memorisation": {"query_share": "query_share", "sequence_share": "sequence_share"},
    "counterfactual": {
        "lds": PER_MODEL + "lds_mean",
        "delta_logp": PER_MODEL + "delta_logp_mean",
        "n_subsets": PER_MODEL + "n_subsets",
    },
    "validation": {
        "pearson_ekfac": "ekfac_pearson_lm",
        "pearson_kfac": "kfac_pearson_lm",
        "pearson_gradient_dot": "gradient_dot_pearson_lm",
        "pearson_lissa": "lissa_pearson_lm",
        "pearson_block": "block_pearson_lm",
        "pearson_rank32": "rank32_pearson",
    },
}


def spec_for(rule: str, wildcards: Mapping[str, str]) -> dict[str, str]:
    """The headline spec of a job (``study:<name>`` for the study rule)."""
    key = f"{rule}:{wildcards['study']}" if "study" in wildcards else rule
    if key not in HEADLINES:
        raise KeyError(
            f"rule {rule} {dict(wildcards)} declares {HEADLINE_FILE} as a metric, but "
            f"llm_influence.workflow.headline.HEADLINES has no entry {key!r}"
        )
    return HEADLINES[key]


def _lookup(node: Any, parts: list[str], suffix: list[str]) -> list[tuple[list[str], Any]]:
    if not parts:
        return [(suffix, node)]
    head, rest = parts[0], parts[1:]
    if not isinstance(node, Mapping):
        return []
    if head == "*":
        return [hit for k in node for hit in _lookup(node[k], rest, [*suffix, str(k)])]
    return _lookup(node[head], rest, suffix) if head in node else []


def _number(name: str, value: Any) -> float | int | bool | None:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    raise TypeError(f"headline {name}: {value!r} is not a number")


def headline(
    metrics: Mapping[str, Any], spec: Mapping[str, str], logger: logging.Logger | None = None
) -> dict[str, float | int | bool | None]:
    """The flat headline dict of ``metrics`` for ``spec`` (names in spec order)."""
    logger = logger or logging.getLogger("llm_influence")
    models = [str(m) for m in metrics.get("models") or []]
    out: dict[str, float | int | bool | None] = {}
    for name, path in spec.items():
        hits = _lookup(metrics, path.split("."), [])
        if not hits:
            logger.info("headline %s: %s is not in %s, left out", name, path, DETAIL_FILE)
        for suffix, value in hits:
            key = ".".join([name, *suffix])
            if isinstance(value, list):
                labels = (
                    models if len(models) == len(value) else [str(i) for i in range(len(value))]
                )
                for label, item in zip(labels, value):
                    out[f"{key}.{label}"] = _number(f"{key}.{label}", item)
            elif isinstance(value, Mapping):
                for sub, item in value.items():
                    out[f"{key}.{sub}"] = _number(f"{key}.{sub}", item)
            else:
                out[key] = _number(key, value)
    return out
