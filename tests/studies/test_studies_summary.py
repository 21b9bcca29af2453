"""Summary verdicts follow their documented rules from the numbers (not constants)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llm_influence.studies.summary import FAILS, HOLDS, INCONCLUSIVE, build_summary, render_markdown

MODELS = ["s", "l"]
REPORT = yaml.safe_load((Path(__file__).resolve().parents[2] / "config/config.yaml").read_text())[
    "report"
]


def verdicts(metrics):
    rows = build_summary(metrics, MODELS, REPORT)
    return dict(zip(rows["id"], rows["verdict"]))


def sparsity(alpha, rejected, tested=8, share=0.3):
    return {"sparsity": {"gof_threshold": 0.1, "per_model": {"l": {
        "n_fitted": tested, "alpha_median": alpha, "alpha_min": alpha, "alpha_max": alpha,
        "n_gof_tested": tested, "n_rejected": rejected, "top_share_median": share,
        "frac_above_threshold_mean": 0.001, "figure": "sparsity_l.png"}}}}  # fmt: skip


@pytest.mark.parametrize(
    ("alpha", "rejected", "tested", "share", "expect"),
    [
        (3.0, 2, 8, 0.3, (HOLDS, HOLDS, HOLDS)),
        (1.5, 6, 8, 0.9, (FAILS, FAILS, FAILS)),
        (3.0, 0, 2, 0.3, (INCONCLUSIVE, INCONCLUSIVE, HOLDS)),
    ],
)
def test_sparsity_rules(alpha, rejected, tested, share, expect):
    v = verdicts(sparsity(alpha, rejected, tested, share))
    assert (v["sparsity.alpha"], v["sparsity.gof"], v["sparsity.top1"]) == expect


@pytest.mark.parametrize(
    ("ratios", "expect"),
    [
        ([0.05, 0.6], HOLDS),
        ([0.5, 0.6], INCONCLUSIVE),
        ([0.3, 0.1], FAILS),
        ([0.1, 0.12], INCONCLUSIVE),
    ],
)
def test_crosslingual_rule(ratios, expect):
    m = {"crosslingual": {"ratio": ratios, "top_k": 10, "n_pairs": 3, "figure": "c.png"}}
    assert verdicts(m)["crosslingual"] == expect


@pytest.mark.parametrize(("flip", "expect"), [(0.05, HOLDS), (0.3, INCONCLUSIVE), (0.9, FAILS)])
def test_orderflip_rule(flip, expect):
    m = {"orderflip": {"flipped_over_forward": [0.5, flip], "norelation_over_forward": [0.5, flip],
                       "means": {"l": {"query_order": 1.0}}, "figure": "o.png"}}  # fmt: skip
    v = verdicts(m)
    assert v["orderflip.flipped"] == expect and v["orderflip.norelation"] == HOLDS


def test_orderflip_negative_forward_is_inconclusive():
    m = {"orderflip": {"flipped_over_forward": [0.0, 0.0], "norelation_over_forward": [0.0, 0.0],
                       "means": {"l": {"query_order": -1.0}}}}  # fmt: skip
    assert verdicts(m)["orderflip.flipped"] == INCONCLUSIVE


def test_missing_studies_are_inconclusive_and_markdown_renders():
    rows = build_summary({}, MODELS, REPORT)
    assert set(rows["verdict"]) == {INCONCLUSIVE}
    text = render_markdown(rows, MODELS)
    assert text.count("\n| ") == len(rows) + 1 and "inconclusive" in text
