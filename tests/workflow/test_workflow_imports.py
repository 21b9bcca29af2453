"""Job start-up cost: stages that never touch a tensor must not import torch (1-2 s per job).

Each check runs in a fresh interpreter, since this test process has torch loaded already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from llm_influence.utils.io import load_arrays, load_tensors, save_tensors

LIGHT = {
    "llm_influence.workflow.runner": ("torch", "transformers", "matplotlib"),
    "llm_influence.corpus.stage": ("torch", "transformers", "matplotlib"),
    "llm_influence.studies.stage": ("torch", "transformers", "matplotlib", "seaborn"),
    "llm_influence.tfidf.stage": ("torch", "transformers"),
    "llm_influence.attribution.stage": ("transformers",),  # eigen/merge/gather jobs build no model
}


def imported_after(module: str) -> set[str]:
    code = f"import sys, json; import {module}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return {name.split(".")[0] for name in json.loads(out)}


@pytest.mark.parametrize("module", sorted(LIGHT))
def test_stage_modules_import_only_what_they_use(module: str) -> None:
    loaded = imported_after(module)
    assert not loaded & set(LIGHT[module]), (
        f"{module} imports {sorted(loaded & set(LIGHT[module]))}"
    )


def test_load_arrays_matches_load_tensors(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    tensors = {
        "total": torch.randn(3, 5),
        "doc_id": torch.arange(5),
        "mask": torch.ones(2, 2).bool(),
    }
    save_tensors(path, tensors, {"modules": ["a", "b"], "n": 3})
    arrays, meta = load_arrays(path)
    torch_back, torch_meta = load_tensors(path)
    assert meta == torch_meta == {"modules": ["a", "b"], "n": 3}
    assert set(arrays) == set(tensors)
    for key, value in tensors.items():
        assert isinstance(arrays[key], np.ndarray)
        np.testing.assert_array_equal(arrays[key], value.numpy())
        np.testing.assert_array_equal(arrays[key], torch_back[key].numpy())


def test_load_arrays_names_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothing.safetensors"):
        load_arrays(tmp_path / "nothing.safetensors")
