"""The hf/local corpus source: jsonl, parquet, text, csv and save_to_disk directories (no network)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from llm_influence.artifacts.corpus import load_corpus
from llm_influence.corpus.hf import CorpusSourceError
from llm_influence.corpus.stage import build_corpus
from llm_influence.workflow.context import StageContext

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

ROWS = [
    {"body": "The quick brown fox jumps over the lazy dog.", "id": 0},
    {"body": "A second document about rivers and boats.", "id": 1},
    {"body": "The quick brown fox jumps over the lazy dog.", "id": 2},  # exact duplicate
    {"body": "tiny", "id": 3},  # below min_chars
    {"body": "  Third document, with surrounding spaces.  ", "id": 4},
]


def hf_section(path, **overrides) -> dict:
    hf = {
        "path": None if path is None else str(path),
        "name": None,
        "split": "train",
        "text_field": "body",
        "max_documents": None,
        "dedup": True,
        "min_chars": 10,
        "language": "en",
    }
    hf.update(overrides)
    return {"source": "hf", "synthetic": {}, "hf": hf}


def run(tmp_path: Path, section: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    ctx = StageContext(
        rule="corpus", config={"seed": 0, "corpus": section}, input={}, output={"corpus": out}
    )
    build_corpus(ctx)
    return load_corpus(out)


@pytest.fixture
def jsonl(tmp_path) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    return path


EXPECTED = [
    "The quick brown fox jumps over the lazy dog.",
    "A second document about rivers and boats.",
    "Third document, with surrounding spaces.",
]


def test_jsonl_dedup_min_chars_and_manifest(tmp_path, jsonl):
    docs, manifest, world = run(tmp_path, hf_section(jsonl))
    assert docs["text"].tolist() == EXPECTED
    assert docs["doc_id"].tolist() == [0, 1, 2]
    assert set(manifest["category"]) == {"hf"} and set(manifest["language"]) == {"en"}
    assert manifest["fact_ids"].str.len().eq(0).all() and manifest["order"].isna().all()
    assert (manifest["parallel_id"] == -1).all()
    assert world["source"] == "hf" and world["facts"] == []


def test_no_dedup_and_max_documents(tmp_path, jsonl):
    docs, _, _ = run(tmp_path, hf_section(jsonl, dedup=False, max_documents=3))
    assert docs["text"].tolist() == [EXPECTED[0], EXPECTED[1], EXPECTED[0]]


def test_parquet_csv_and_language(tmp_path):
    frame = pd.DataFrame(ROWS)
    frame.to_parquet(tmp_path / "data.parquet")
    frame.to_csv(tmp_path / "data.csv", index=False)
    for name in ("data.parquet", "data.csv"):
        docs, manifest, _ = run(tmp_path, hf_section(tmp_path / name, language="es"))
        assert docs["text"].tolist() == EXPECTED, name
        assert set(manifest["language"]) == {"es"}


def test_text_file(tmp_path):
    path = tmp_path / "data.txt"
    path.write_text("\n".join(r["body"] for r in ROWS) + "\n", encoding="utf-8")
    docs, _, _ = run(tmp_path, hf_section(path, text_field="text"))
    assert docs["text"].tolist() == EXPECTED


def test_saved_to_disk_dataset_and_datasetdict(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list(ROWS)
    ds.save_to_disk(str(tmp_path / "single"))
    datasets.DatasetDict({"train": ds, "validation": ds.select([1])}).save_to_disk(
        str(tmp_path / "dict")
    )
    docs, _, _ = run(tmp_path, hf_section(tmp_path / "single"))
    assert docs["text"].tolist() == EXPECTED
    docs, _, _ = run(tmp_path, hf_section(tmp_path / "dict", split="validation"))
    assert docs["text"].tolist() == [EXPECTED[1]]
    with pytest.raises(CorpusSourceError, match="split 'test' not found"):
        run(tmp_path, hf_section(tmp_path / "dict", split="test"))


def test_directory_of_data_files_goes_through_load_dataset(tmp_path, jsonl):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "train.jsonl").write_text(jsonl.read_text(encoding="utf-8"), encoding="utf-8")
    docs, _, _ = run(tmp_path, hf_section(folder))
    assert docs["text"].tolist() == EXPECTED


def test_missing_field_names_file_and_field(tmp_path, jsonl):
    with pytest.raises(CorpusSourceError) as err:
        run(tmp_path, hf_section(jsonl, text_field="content"))
    msg = str(err.value)
    assert "'content'" in msg and str(jsonl) in msg and "body" in msg


def test_missing_file_names_the_file(tmp_path):
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(CorpusSourceError, match="not found: .*nope.jsonl"):
        run(tmp_path, hf_section(missing))


def test_path_required_for_hf(tmp_path):
    with pytest.raises(ValueError, match="corpus.hf.path"):
        run(tmp_path, hf_section(None))
