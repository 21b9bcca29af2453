"""The registry is the one list of studies: modules, entries, claims, config and rules follow it."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from llm_influence.studies import stage
from llm_influence.studies.claims import Claim
from llm_influence.studies.registry import NAMES, SHARED, SHARED_RULE, STUDIES, study
from llm_influence.studies.summary import NOT_RUN, build_summary, claims_by_study
from llm_influence.workflow.headline import HEADLINES

ROOT = Path(__file__).resolve().parents[2]


def test_names_are_unique_and_looked_up():
    assert len(set(NAMES)) == len(NAMES)
    assert study("scale").module == "llm_influence.studies.scale"
    with pytest.raises(KeyError, match="unknown study 'nope'"):
        study("nope")


@pytest.mark.parametrize("name", SHARED)
def test_shared_study_has_run_and_an_entry(name):
    module = importlib.import_module(study(name).module)
    assert callable(module.run)
    entry = getattr(stage, name)
    assert entry.__name__ == name and stage.STUDIES[name] is entry


def test_unknown_entry_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        stage.nope  # noqa: B018


def test_claims_are_records_with_unique_ids_in_registry_order():
    by_study = claims_by_study()
    assert [s for s, _ in by_study] == list(NAMES)
    ids = [c.id for _, claims in by_study for c in claims]
    assert len(ids) == len(set(ids))
    assert all(isinstance(c, Claim) for _, claims in by_study for c in claims)
    report = yaml.safe_load((ROOT / "config/config.yaml").read_text())["report"]
    rows = build_summary({}, ["s", "l"], report)
    assert list(rows["id"]) == ids  # a missing study: each of its claims, once, "study not run"
    assert set(rows["ours"]) == {NOT_RUN}


def test_config_schema_and_rules_cover_every_study():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    studies_schema = schema["properties"]["studies"]
    in_studies = {s.name for s in STUDIES if s.section == "studies"}
    own = {s.section for s in STUDIES if s.section != "studies"}  # a top-level section each
    assert in_studies <= set(studies_schema["required"]) & set(studies_schema["properties"])
    assert own <= set(schema["required"]) & set(schema["properties"])
    for name in ("config.yaml", "smoke.yaml"):
        cfg = yaml.safe_load((ROOT / "config" / name).read_text())
        assert in_studies <= set(cfg["studies"]), name
        assert own <= set(cfg), name
    for s in STUDIES:
        key = f"{SHARED_RULE}:{s.name}" if s.rule == SHARED_RULE else s.rule
        assert key in HEADLINES, key
    rules = "".join(p.read_text() for p in sorted((ROOT / "workflow/rules").glob("*.smk")))
    for s in STUDIES:
        if s.rule != SHARED_RULE:
            assert f"rule {s.rule}:" in rules, s.rule
