"""Claim records: one summary row each, judged on one study's ``metrics.json``.

A :class:`Claim` holds the paper's statement and number, the rule in words (formatted with the
``report`` thresholds) and ``evaluate(metrics, cfg) -> Judgement`` (ours / verdict / figure).
Study modules list theirs as ``CLAIMS``; :mod:`llm_influence.studies.summary` collects them in the
order of the registry and handles a missing or skipped study once, for all its claims.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from llm_influence.studies.data import increasing

HOLDS, FAILS, INCONCLUSIVE = "holds", "does not hold", "inconclusive"
PAPER, SANITY, VALIDITY = "paper claim", "sanity check", "validity check"
KINDS = (PAPER, SANITY, VALIDITY)


@dataclass(frozen=True)
class SummaryConfig:
    """What every claim is judged with: the model sizes (largest last) and the report section."""

    models: list[str]
    report: Mapping[str, Any]

    @property
    def largest(self) -> str:
        return self.models[-1]


@dataclass(frozen=True)
class Judgement:
    ours: str
    verdict: str
    figure: str | None = None  # file name inside the study's directory


class _Fill(dict):
    """Placeholders of a claim's text filled from its study's metrics ("k" when absent)."""

    def __missing__(self, key: str) -> str:
        return "k"


@dataclass(frozen=True)
class Claim:
    id: str
    claim: str  # may name metrics in braces, e.g. "in the top {fact_top_k}"
    paper: str  # the paper's number or statement
    rule: Callable[[Mapping[str, Any]], str]  # the rule in words, from the report thresholds
    evaluate: Callable[[Mapping[str, Any], SummaryConfig], Judgement]
    kind: str = PAPER  # paper claim | sanity check | validity check (not a paper claim)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id}: kind must be one of {KINDS}, got {self.kind!r}")

    def text(self, metrics: Mapping[str, Any] | None) -> str:
        """The claim as shown: checks that are not paper claims say so."""
        claim = self.claim.format_map(_Fill(metrics or {}))
        return claim if self.kind == PAPER else f"({self.kind}, not a paper claim) {claim}"


# ------------------------------------------------------------------- helpers for the rules


def fmt(x: Any, spec: str = ".3g") -> str:
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "n/a"
    if isinstance(x, (list, tuple)):
        return "[" + ", ".join(fmt(v, spec) for v in x) + "]"
    return format(float(x), spec)


def per_size(models: Sequence[str], values: Sequence[Any] | None) -> str:
    if not values:
        return "n/a"
    return ", ".join(f"{m}: {fmt(v)}" for m, v in zip(models, values))


def num(x: Any) -> float:
    try:
        return float(x) if x is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


def rises(values: Sequence[Any] | None, min_rise: float) -> str:
    """'Rises with model size': holds if :func:`increasing` and last − first ≥ ``min_rise``;
    does not hold if last ≤ first; inconclusive otherwise (small or non-monotone rise, < 2 sizes)."""
    v = [num(x) for x in (values or [])]
    inc = increasing(v)
    if inc is None:
        return INCONCLUSIVE
    finite = [x for x in v if np.isfinite(x)]
    if finite[-1] <= finite[0]:
        return FAILS
    return HOLDS if inc and finite[-1] - finite[0] >= min_rise else INCONCLUSIVE


def share_verdict(value: float, hold_min: float, fail_below: float) -> str:
    """holds if ≥ ``hold_min``, does not hold if < ``fail_below``, inconclusive between or NaN."""
    if not np.isfinite(value):
        return INCONCLUSIVE
    return HOLDS if value >= hold_min else FAILS if value < fail_below else INCONCLUSIVE


def verdict_of(holds: bool, judgeable: bool = True) -> str:
    """holds / does not hold, or inconclusive when the numbers cannot judge the claim."""
    if not judgeable:
        return INCONCLUSIVE
    return HOLDS if holds else FAILS
