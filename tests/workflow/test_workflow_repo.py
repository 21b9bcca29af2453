"""The repository's own workflow: dvc.yaml in sync with the Snakefile, lint/format, config errors.

Config errors must stop `snakemake` before any job runs, naming the key path and the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from workflow_helpers import BIN, REPO, run

from llm_influence.workflow.config import config_errors, load_schema

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_dvc_yaml_matches_snakefile() -> None:
    proc = run([str(BIN / "llm-influence"), "dvc-sync", "--check"], REPO, check=False)
    assert proc.returncode == 0, (
        "dvc.yaml drifted from the Snakefile; run `llm-influence dvc-sync` and commit dvc.yaml\n"
        + proc.stderr[-3000:]
    )


def test_snakemake_lint_and_snakefmt() -> None:
    lint = run([str(BIN / "snakemake"), "--lint"], REPO, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    fmt = run([str(BIN / "snakefmt"), "--check", "Snakefile", "workflow/rules"], REPO, check=False)
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr


def test_shipped_configs_are_valid() -> None:
    schema = load_schema(SCHEMA)
    for name in ("config.yaml", "smoke.yaml"):
        merged = yaml.safe_load((REPO / "config" / name).read_text())
        assert config_errors(merged, schema) == [], name


def _negative_size_key() -> tuple[list[str], int]:
    """A key of the default config whose schema demands a non-negative integer."""

    def walk(schema: dict[str, Any], value: Any, path: list[str]):
        minimum = schema.get("minimum")
        if (
            schema.get("type") == "integer"
            and minimum is not None
            and minimum >= 0
            and path != ["seed"]
        ):
            yield path, minimum
        for key, sub in (schema.get("properties") or {}).items():
            if isinstance(value, dict) and key in value and isinstance(sub, dict):
                yield from walk(sub, value[key], [*path, key])

    found = next(walk(load_schema(SCHEMA), DEFAULT, []), None)
    if found is None:
        pytest.skip("no non-negative integer setting in the config schema yet")
    return found


def _nested(path: list[str], value: Any) -> dict[str, Any]:
    for key in reversed(path):
        value = {key: value}
    return value


def _query_file_key() -> list[str]:
    def walk(value: Any, path: list[str]):
        if isinstance(value, str) and value.endswith((".yaml", ".yml")):
            yield path
        elif isinstance(value, dict):
            for key, sub in value.items():
                yield from walk(sub, [*path, key])

    found = next(walk(DEFAULT.get("queries", {}), ["queries"]), None)
    if found is None:
        pytest.skip("the queries section names no query file yet")
    return found


def _case(name: str) -> tuple[dict[str, Any], str]:
    if name == "wrong type":
        return {"seed": "zero"}, "seed: 'zero' is not of type 'integer'"
    if name == "unknown key":
        return {"tfidf": {"no_such_setting": 1}}, "tfidf.no_such_setting: unknown key"
    if name == "unknown top-level key":
        return {"no_such_section": {}}, "no_such_section: unknown key"
    if name == "bad enum":
        return {"device": "tpu"}, "device: 'tpu' is not one of"
    if name == "negative size":
        path, _ = _negative_size_key()
        return _nested(path, -5), f"{'.'.join(path)}: -5 is less than the minimum"
    if name == "undefined model":
        models = [DEFAULT["models"][0], "huge"]
        return {"models": models}, "models[1]: 'huge' is not defined in pretrain.models"
    if name == "missing query file":
        path = _query_file_key()
        return _nested(path, "config/queries/no-such-file.yaml"), (
            f"{'.'.join(path)}: query file not found: config/queries/no-such-file.yaml"
        )
    raise ValueError(name)


@pytest.mark.parametrize(
    "name",
    [
        "wrong type",
        "unknown key",
        "unknown top-level key",
        "bad enum",
        "negative size",
        "undefined model",
        "missing query file",
    ],
)
def test_bad_config_fails_before_any_job(name: str, tmp_path: Path) -> None:
    override, expected = _case(name)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(override))
    proc = run(
        [str(BIN / "snakemake"), "-n", "--nolock", "--cores", "1", "--configfile", str(bad)],
        REPO,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert expected in output, output[-3000:]
    assert "Building DAG of jobs" not in output
