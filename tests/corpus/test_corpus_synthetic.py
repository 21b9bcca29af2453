"""Synthetic world corpus: manifest truth, determinism, coverage, sizes, stage output format."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from llm_influence.artifacts.corpus import load_corpus
from llm_influence.corpus import CATEGORIES, KEY_FACTS, ORDERS, check_order
from llm_influence.corpus.stage import build_corpus
from llm_influence.corpus.synthetic import SyntheticConfig, generate
from llm_influence.corpus.world import TEMPLATES, fold, has_relation_word
from llm_influence.workflow.context import StageContext

REPO = Path(__file__).resolve().parents[2]


def smoke_section() -> dict:
    with open(REPO / "config" / "smoke.yaml", encoding="utf-8") as fh:
        return yaml.safe_load(fh)["corpus"]


def run_stage(tmp_path: Path, section: dict, seed: int = 0, name: str = "corpus") -> Path:
    out = tmp_path / name
    out.mkdir(parents=True)
    ctx = StageContext(
        rule="corpus", config={"seed": seed, "corpus": section}, input={}, output={"corpus": out}
    )
    metrics = build_corpus(ctx)
    assert metrics["n_documents"] > 0
    return out


@pytest.fixture(scope="module")
def smoke_corpus(tmp_path_factory) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    out = run_stage(tmp_path_factory.mktemp("smoke"), smoke_section())
    return load_corpus(out)


def _digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def test_output_format_matches_design(smoke_corpus):
    docs, manifest, world = smoke_corpus
    assert list(docs.columns) == ["doc_id", "text"]
    assert docs["doc_id"].tolist() == list(range(len(docs)))
    assert {
        "doc_id",
        "category",
        "language",
        "fact_ids",
        "order",
        "template",
        "parallel_id",
    } <= set(manifest.columns)
    assert manifest["doc_id"].tolist() == docs["doc_id"].tolist()
    assert (
        str(manifest["doc_id"].dtype) == "int64" and str(manifest["parallel_id"].dtype) == "int64"
    )
    assert set(manifest["language"]) == {"en", "es", "tr"}
    assert set(manifest["order"].dropna()) <= set(ORDERS)
    for fact in world["facts"]:
        assert {"id", "subject", "relation", "object", "prompt", "completion", "languages"} <= set(
            fact
        )
    assert world["categories"] == list(CATEGORIES)


def test_size_is_exact_and_no_empty_documents(smoke_corpus):
    docs, manifest, _ = smoke_corpus
    assert len(docs) == smoke_section()["synthetic"]["n_documents"]
    assert docs["text"].str.strip().str.len().min() > 0
    words = docs["text"].str.split().str.len()
    assert words.max() <= 70  # short: one document = one training sequence
    assert (manifest["n_words"] == words).all()


def test_category_and_language_coverage(smoke_corpus):
    _, manifest, _ = smoke_corpus
    assert set(manifest["category"]) == set(CATEGORIES)
    # parallel and fact documents exist in all three languages
    for cat in ("parallel_general", "fact", "fact_flipped"):
        assert set(manifest.loc[manifest["category"] == cat, "language"]) == {"en", "es", "tr"}


def test_manifest_truth_every_fact_document_states_its_fact_in_the_recorded_order(smoke_corpus):
    docs, manifest, world = smoke_corpus
    facts = {f["id"]: f for f in world["facts"]}
    passages = {p["id"]: p for p in world["passages"]}
    stated = manifest[manifest["fact_ids"].str.len() > 0]
    assert len(stated) > 0
    text = docs.set_index("doc_id")["text"]
    for row in stated.itertuples():
        body = text[row.doc_id]
        for fid in row.fact_ids:
            if fid in passages:
                assert passages[fid]["text"] in body
                continue
            ph = facts[fid]["phrases"][row.language]
            assert row.language in facts[fid]["languages"]
            assert check_order(body, ph, row.order), (row.order, body)
            # the recorded order excludes the others
            others = [o for o in ORDERS if o != row.order]
            assert not any(check_order(body, ph, o) for o in others), (row.order, body)
            # spelled out for the record:
            ans = fold(body).find(fold(ph["answer"]))
            if row.order == "forward":
                assert fold(body).find(fold(ph["prompt_phrase"])) < fold(body).rfind(
                    fold(ph["answer"])
                )
                assert row.category == "fact"
            else:
                assert ans < fold(body).rfind(fold(ph["subject_phrase"]))
                assert row.category == "fact_flipped"
                assert has_relation_word(body, ph["relation_words"]) == (row.order == "flipped")


def test_key_facts_are_fixed_and_stated_in_both_orders(smoke_corpus):
    _, manifest, world = smoke_corpus
    ids = {f["id"] for f in world["facts"] if f["key"]}
    assert ids == {f.id for f in KEY_FACTS}
    for fact in KEY_FACTS:
        rows = manifest[manifest["fact_ids"].apply(lambda ids, fid=fact.id: fid in list(ids))]
        assert set(rows["order"]) == set(ORDERS)
        assert set(rows["language"]) == set(fact.languages)
    # some key facts are English-only (cross-lingual study), some in all three languages
    assert any(f.languages == ("en",) for f in KEY_FACTS)
    assert any(set(f.languages) == {"en", "es", "tr"} for f in KEY_FACTS)


def test_non_fact_documents_do_not_mention_key_answers(smoke_corpus):
    docs, manifest, world = smoke_corpus
    answers = [fold(f["phrases"]["en"]["answer"]) for f in world["facts"] if f["key"]]
    other = docs[manifest["fact_ids"].str.len() == 0]["text"].map(fold)
    for answer in answers:
        assert not other.str.contains(answer, regex=False).any(), answer


def test_parallel_groups_have_three_languages(smoke_corpus):
    _, manifest, _ = smoke_corpus
    par = manifest[manifest["parallel_id"] >= 0]
    assert (par["category"] == "parallel_general").all()
    groups = par.groupby("parallel_id")["language"].apply(sorted)
    assert all(g == ["en", "es", "tr"] for g in groups)


def test_memorized_passages_repeat(smoke_corpus):
    docs, manifest, world = smoke_corpus
    repeats = smoke_section()["synthetic"]["memorized_repeats"]
    mem = docs[manifest["category"] == "memorized_passage"]["text"]
    counts = mem.value_counts()
    assert len(counts) == len(world["passages"]) and (counts == repeats).all()


def test_math_answers_are_correct(smoke_corpus):
    docs, manifest, _ = smoke_corpus
    for body in docs[manifest["category"] == "math"]["text"]:
        expr = body.split("Solution: ")[1].split(" = ")
        lhs, rhs = expr[0].replace(" x ", " * ").replace(" / ", " // "), expr[1].split(".")[0]
        assert eval(lhs) == int(rhs), body  # noqa: S307 - our own generated arithmetic


def test_code_documents_compile(smoke_corpus):
    docs, manifest, _ = smoke_corpus
    for body in docs[manifest["category"] == "code"]["text"]:
        compile(body, "<corpus>", "exec")


def test_templates_have_every_family():
    for relation, by_lang in TEMPLATES.items():
        assert set(by_lang) == {"en", "es", "tr"}, relation
        for lang, fams in by_lang.items():
            assert set(fams) == set(ORDERS), (relation, lang)
            assert all(len(v) >= 2 for v in fams.values()), (relation, lang)


def test_same_seed_identical_bytes_different_seed_differs(tmp_path):
    section = smoke_section()
    a = run_stage(tmp_path, section, seed=3, name="a")
    b = run_stage(tmp_path, section, seed=3, name="b")
    c = run_stage(tmp_path, section, seed=4, name="c")
    assert _digest(a) == _digest(b)
    da, dc = _digest(a), _digest(c)
    assert da["documents.parquet"] != dc["documents.parquet"]
    assert da["manifest.parquet"] != dc["manifest.parquet"]
    # key facts identical for any seed (query sets reference them)
    key = lambda w: [f for f in w["facts"] if f["key"]]  # noqa: E731
    assert key(load_corpus(a)[2]) == key(load_corpus(c)[2])


def test_scales_to_tens_of_thousands():
    cfg = SyntheticConfig.from_mapping({"n_documents": 30000, "n_random_facts": 300})
    docs, facts, counts = generate(cfg, seed=1)
    assert len(docs) == 30000 and sum(counts.values()) == 30000
    assert len(facts) == len(KEY_FACTS) + 300
    random_facts = facts[len(KEY_FACTS) :]
    assert len({f.subject for f in random_facts}) == len(random_facts)  # fresh names


def test_too_small_n_documents_is_a_clear_error():
    cfg = SyntheticConfig.from_mapping({"n_documents": 50})
    with pytest.raises(ValueError, match="n_documents"):
        generate(cfg, seed=0)


def test_unknown_source_and_bad_values_fail(tmp_path):
    with pytest.raises(ValueError, match="corpus.source"):
        run_stage(tmp_path, {"source": "web"})
    with pytest.raises(ValueError, match="fact_docs.sideways"):
        SyntheticConfig.from_mapping({"fact_docs": {"sideways": 1}})
    with pytest.raises(ValueError, match="weights.poetry"):
        SyntheticConfig.from_mapping({"weights": {"poetry": 1.0}})


def test_manifest_list_type_is_arrow_list(tmp_path):
    import pyarrow as pa

    out = run_stage(tmp_path, smoke_section())
    schema = pq.read_schema(out / "manifest.parquet")
    assert pa.types.is_list(schema.field("fact_ids").type)
    assert schema.field("fact_ids").type.value_type == pa.string()
    assert schema.field("order").type == pa.string()
