"""Query-set validation: every kind of error names the query and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llm_influence.queries import (
    QUERY_SCHEMA,
    TAGS,
    QuerySetError,
    check_query_lengths,
    load_query_set,
)

REPO = Path(__file__).resolve().parents[2]
GOOD = {
    "name": "capital",
    "prompt": "The capital of Astrobia is",
    "completion": " Velmora",
    "language": "en",
    "tags": ["factual"],
    "fact_id": "astrobia_capital",
}


def write(tmp_path: Path, queries: list[dict], name: str = "q.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"queries": queries}, allow_unicode=True), encoding="utf-8")
    return path


def error_of(tmp_path: Path, queries: list[dict]) -> str:
    with pytest.raises(QuerySetError) as err:
        load_query_set(write(tmp_path, queries))
    return str(err.value)


def test_default_set_is_valid_and_covers_every_kind():
    queries = load_query_set(REPO / "config" / "queries" / "default.yaml")
    assert 20 <= len(queries) <= 40
    tags = {t for q in queries for t in q.tags}
    assert tags == set(TAGS)
    assert {q.language for q in queries} == {"en", "es", "tr"}
    names = {q.name for q in queries}
    for must in (
        "first_president",
        "shutdown",
        "paperclips",
        "binary_search",
        "gettysburg_address",
    ):
        assert must in names
    assert any(q.order == "flipped" for q in queries)
    assert all(q.translation_of in names for q in queries if q.translation_of)


def test_schema_file_matches_code():
    with open(REPO / "workflow" / "schemas" / "queries.schema.yaml", encoding="utf-8") as fh:
        assert yaml.safe_load(fh) == QUERY_SCHEMA


def test_missing_field(tmp_path):
    bad = {k: v for k, v in GOOD.items() if k != "completion"}
    msg = error_of(tmp_path, [bad])
    assert "query 'capital'" in msg and "field 'completion': missing" in msg


def test_missing_name_uses_index(tmp_path):
    bad = {k: v for k, v in GOOD.items() if k != "name"}
    msg = error_of(tmp_path, [GOOD, bad])
    assert "queries[1]" in msg and "field 'name': missing" in msg


def test_unknown_tag(tmp_path):
    msg = error_of(tmp_path, [{**GOOD, "tags": ["factual", "poetry"]}])
    assert "query 'capital'" in msg and "field 'tags'" in msg and "unknown tag 'poetry'" in msg


@pytest.mark.parametrize("completion", ["", "   ", "\n"])
def test_empty_completion(tmp_path, completion):
    msg = error_of(tmp_path, [{**GOOD, "completion": completion}])
    assert "query 'capital'" in msg and "field 'completion': empty completion" in msg


def test_duplicate_names(tmp_path):
    msg = error_of(tmp_path, [GOOD, dict(GOOD)])
    assert "query 'capital' (queries[1])" in msg and "duplicate name" in msg


def test_dangling_links(tmp_path):
    msg = error_of(
        tmp_path,
        [
            GOOD,
            {**GOOD, "name": "capital_es", "language": "es", "translation_of": "capitol"},
            {**GOOD, "name": "capital_v", "variant_of": "nowhere"},
        ],
    )
    assert "query 'capital_es'" in msg and "field 'translation_of': no query named 'capitol'" in msg
    assert "query 'capital_v'" in msg and "field 'variant_of': no query named 'nowhere'" in msg


def test_translation_must_change_language(tmp_path):
    msg = error_of(tmp_path, [GOOD, {**GOOD, "name": "capital2", "translation_of": "capital"}])
    assert "query 'capital2'" in msg and "same language" in msg


def test_unknown_field_language_fact_and_order(tmp_path):
    msg = error_of(
        tmp_path,
        [{**GOOD, "langauge": "en", "language": "fr", "fact_id": "atlantis", "order": "sideways"}],
    )
    assert "field 'langauge': unknown field" in msg
    assert "field 'language'" in msg and "'fr'" in msg
    assert "field 'fact_id': unknown fact or passage 'atlantis'" in msg
    assert "field 'order'" in msg


def test_all_errors_reported_at_once_with_file_name(tmp_path):
    path = write(tmp_path, [{**GOOD, "tags": ["x"]}, {**GOOD, "name": "b", "completion": ""}])
    with pytest.raises(QuerySetError) as err:
        load_query_set(path)
    msg = str(err.value)
    assert str(path) in msg and "'capital'" in msg and "'b'" in msg


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(QuerySetError, match="not found"):
        load_query_set(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("queries: [\n", encoding="utf-8")
    with pytest.raises(QuerySetError, match="not valid YAML"):
        load_query_set(bad)
    empty = tmp_path / "empty.yaml"
    empty.write_text("queries: []\n", encoding="utf-8")
    with pytest.raises(QuerySetError):
        load_query_set(empty)


def test_error_is_a_value_error(tmp_path):
    # the Snakefile's start-up check catches ValueError
    with pytest.raises(ValueError):
        load_query_set(write(tmp_path, [{**GOOD, "tags": []}]))


class CharTokenizer:
    """One token per character: lengths are easy to predict."""

    def __call__(self, texts, add_special_tokens=False):
        return {"input_ids": [list(range(len(t))) for t in texts]}


def test_check_query_lengths_names_the_long_query(tmp_path):
    queries = load_query_set(
        write(tmp_path, [GOOD, {**GOOD, "name": "long", "completion": " x" * 40}])
    )
    lengths = check_query_lengths(queries[:1], CharTokenizer(), 64)
    assert lengths == {"capital": len(GOOD["prompt"] + GOOD["completion"])}
    with pytest.raises(
        QuerySetError, match=r"query 'long'.*'prompt' \+ 'completion'.*exceed the context of 64"
    ):
        check_query_lengths(queries, CharTokenizer(), 64)
