"""Headline metrics: flat numbers chosen from a stage's metrics.json (what DVC shows)."""

from __future__ import annotations

import logging

import pytest

from llm_influence.workflow.headline import HEADLINES, headline, spec_for

METRICS = {
    "study": "sparsity",
    "models": ["tiny", "small"],
    "related_share": [0.5, 0.75],
    "per_model": {
        "tiny": {"alpha_median": 3.1, "n_rejected": 12, "thirds": {"lower": None, "upper": 0.5}},
        "small": {"alpha_median": 2.8, "n_rejected": 13, "thirds": {"lower": 0.9, "upper": 0.7}},
    },
    "retrieval": {"mrr": 0.74, "recall@10": 0.76},
    "config": {"huge": list(range(100))},
}


def test_selects_and_flattens_by_model() -> None:
    spec = {
        "alpha": "per_model.*.alpha_median",
        "rejected": "per_model.*.n_rejected",
        "thirds": "per_model.*.thirds",
        "share": "related_share",
        "mrr": "retrieval.mrr",
    }
    assert headline(METRICS, spec) == {
        "alpha.tiny": 3.1,
        "alpha.small": 2.8,
        "rejected.tiny": 12,
        "rejected.small": 13,
        "thirds.tiny.lower": None,
        "thirds.tiny.upper": 0.5,
        "thirds.small.lower": 0.9,
        "thirds.small.upper": 0.7,
        "share.tiny": 0.5,
        "share.small": 0.75,
        "mrr": 0.74,
    }


def test_missing_path_is_left_out_and_logged(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="llm_influence"):
        assert headline(METRICS, {"mrr": "retrieval.mrr", "gone": "retrieval.ndcg"}) == {
            "mrr": 0.74
        }
    assert "retrieval.ndcg is not in metrics.json" in caplog.text


def test_a_string_is_not_a_headline_number() -> None:
    with pytest.raises(TypeError, match="headline study: 'sparsity' is not a number"):
        headline(METRICS, {"study": "study"})


def test_spec_lookup_names_the_missing_entry() -> None:
    assert spec_for("study", {"study": "sparsity"}) is HEADLINES["study:sparsity"]
    assert spec_for("pretrain", {"model": "small"}) is HEADLINES["pretrain"]
    with pytest.raises(KeyError, match="has no entry 'study:nosuch'"):
        spec_for("study", {"study": "nosuch"})


def test_every_rule_declaring_a_headline_has_a_spec() -> None:
    """Each headline.json that dvc.yaml declares as a metric comes from a spec here."""
    import yaml
    from workflow_helpers import REPO

    from llm_influence.studies.registry import SHARED_RULE, study

    metrics = yaml.safe_load((REPO / "dvc.yaml").read_text())["metrics"]
    assert metrics and all(m.endswith("/headline.json") for m in metrics)
    for path in metrics:
        parts = path.split("/")
        if parts[:2] == ["data", "models"]:
            spec_for("pretrain", {"model": parts[2]})
        elif parts[:2] == ["results", "studies"]:
            rule = study(parts[2]).rule  # the shared study rule or the study's own
            spec_for(rule, {"study": parts[2]} if rule == SHARED_RULE else {})
        else:
            spec_for(parts[-2], {})
