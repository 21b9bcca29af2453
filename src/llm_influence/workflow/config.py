"""Config validation at workflow start-up: every error names its key path and the reason.

The Snakefile calls :func:`validate_config` and :func:`validate_query_files` before building the
DAG, so a bad value stops the run before any job starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """Invalid workflow configuration; the message lists every problem, one per line."""


def _key_path(path: Iterable[Any]) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else str(p) for p in path]
    return ".".join(parts).replace(".[", "[") or "<top level>"


def config_errors(config: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """All schema violations as ``"<key path>: <reason>"`` strings (empty when valid)."""
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    errors = []
    for err in sorted(validator.iter_errors(dict(config)), key=lambda e: list(map(str, e.path))):
        if err.validator == "additionalProperties":
            allowed = sorted(err.schema.get("properties", {}))
            unknown = sorted(set(err.instance) - set(allowed))
            for key in unknown:
                where = _key_path([*err.path, key])
                errors.append(f"{where}: unknown key (allowed here: {', '.join(allowed)})")
            continue
        errors.append(f"{_key_path(err.path)}: {err.message}")
    return errors


def load_schema(path: str | Path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def validate_config(config: Mapping[str, Any], schema_path: str | Path) -> None:
    """Raise :class:`ConfigError` listing every invalid key of ``config``."""
    errors = config_errors(config, load_schema(str(schema_path)))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))


def _query_paths(section: Any, prefix: str) -> Iterable[tuple[str, str]]:
    """(key path, file path) of every YAML file named in the queries section."""
    if isinstance(section, str) and section.endswith((".yaml", ".yml")):
        yield prefix, section
    elif isinstance(section, Mapping):
        for key, value in section.items():
            yield from _query_paths(value, f"{prefix}.{key}")
    elif isinstance(section, list):
        for i, value in enumerate(section):
            yield from _query_paths(value, f"{prefix}[{i}]")


def _available_tokenizer(config: Mapping[str, Any]) -> Path | None:
    """A tokenizer that exists before any job runs: a local pretrained one, or the one an earlier
    run trained (``data/tokenizer``). A fresh run trains it first; the queries stage then checks."""
    pretrained = config.get("tokenizer", {}).get("pretrained")
    for candidate in (pretrained, "data/tokenizer"):
        if candidate and (Path(candidate) / "tokenizer.json").is_file():
            return Path(candidate)
    return None


def _length_errors(config: Mapping[str, Any], key: str, path: str, queries: list) -> list[str]:
    """Queries whose prompt + completion exceed the context, when a tokenizer is at hand."""
    source = _available_tokenizer(config)
    if source is None:
        return []
    from transformers import AutoTokenizer

    from llm_influence.queries import check_query_lengths
    from llm_influence.queries.stage import max_length_of

    try:
        check_query_lengths(
            queries, AutoTokenizer.from_pretrained(str(source)), max_length_of(dict(config))
        )
    except ValueError as exc:
        return [f"{key}: query file {path} (tokenizer {source}): {exc}"]
    return []


def validate_query_files(config: Mapping[str, Any]) -> None:
    """Every query file named in ``config['queries']`` must exist and load.

    Loading goes through ``llm_influence.queries.load_query_set`` (which names the query and field
    of any error); while that module is absent only existence is checked.
    """
    errors = []
    try:
        load_query_set = importlib.import_module("llm_influence.queries").load_query_set
    except (ImportError, AttributeError):
        load_query_set = None
    for key, path in _query_paths(config.get("queries", {}), "queries"):
        if not Path(path).is_file():
            errors.append(f"{key}: query file not found: {path}")
            continue
        if load_query_set is not None:
            try:
                queries = load_query_set(path)
            except (ValueError, KeyError, TypeError) as exc:
                errors.append(f"{key}: invalid query file {path}: {exc}")
                continue
            errors.extend(_length_errors(config, key, path, queries))
    if errors:
        raise ConfigError("invalid config:\n  " + "\n  ".join(errors))
