"""Config validation at workflow start-up: every error names its key path and the reason.

The Snakefile calls :func:`coerce_config`, :func:`validate_config` and
:func:`validate_query_files` before building the DAG, so a bad value stops the run before any job
starts.
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
    return errors + model_errors(config)


def model_errors(config: Mapping[str, Any]) -> list[str]:
    """Every name in ``models`` must be defined in ``pretrain.models`` (else its pretrain job
    would be planned and fail only when it runs)."""
    models = config.get("models")
    pretrain = config.get("pretrain")
    defined = pretrain.get("models") if isinstance(pretrain, Mapping) else None
    if not isinstance(models, list) or not isinstance(defined, Mapping):
        return []  # the schema reports these
    known = ", ".join(sorted(map(str, defined))) or "none"
    return [
        f"models[{i}]: {name!r} is not defined in pretrain.models (defined: {known})"
        for i, name in enumerate(models)
        if isinstance(name, str) and name not in defined
    ]


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


# ---------------------------------------------------------------------------------------------
# Command-line overrides: Snakemake reads a nested `--config "tfidf={'top_k': 5}"` with YAML's
# base loader, so every value inside arrives as a string ('5'). Coerce such strings to the types
# the schema asks for before validating.

_NULLS = frozenset({"null", "Null", "NULL", "~"})
_TRUE = frozenset({"true", "True", "TRUE", "yes", "Yes", "on", "On"})
_FALSE = frozenset({"false", "False", "FALSE", "no", "No", "off", "Off"})


def _types(schema: Mapping[str, Any]) -> set[str]:
    kind = schema.get("type")
    if kind is None:
        return set()
    return {kind} if isinstance(kind, str) else set(kind)


def _scalar(text: str, types: set[str]) -> Any:
    """``text`` as the first of ``types`` it spells, else ``text`` unchanged."""
    stripped = text.strip()
    if "null" in types and stripped in _NULLS:
        return None
    if "string" in types:
        return text
    if "boolean" in types and (stripped in _TRUE or stripped in _FALSE):
        return stripped in _TRUE
    if "integer" in types or "number" in types:
        try:
            return int(stripped)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(stripped)
        except ValueError:
            pass
    if types & {"array", "object"}:
        try:
            parsed = yaml.safe_load(stripped)
        except yaml.YAMLError:
            return text
        if isinstance(parsed, list) and "array" in types:
            return parsed
        if isinstance(parsed, dict) and "object" in types:
            return parsed
    return text


def _valid(value: Any, schema: Mapping[str, Any]) -> bool:
    import jsonschema

    validator_cls = jsonschema.validators.validator_for(schema)
    return validator_cls(schema).is_valid(value)


def _coerce(value: Any, schema: Any) -> Any:
    if not isinstance(schema, Mapping):
        return value
    branches = [b for key in ("oneOf", "anyOf") for b in schema.get(key, [])]
    if branches and isinstance(value, str) and not _types(schema):
        # a string valid in some branch stays; else the first branch its coercion satisfies
        if any(_valid(value, b) for b in branches):
            return value
        for branch in branches:
            coerced = _coerce(value, branch)
            if coerced is not value and _valid(coerced, branch):
                return coerced
        return value
    if isinstance(value, str):
        value = _scalar(value, _types(schema))
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        return [_coerce(item, schema["items"]) for item in value]
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        extra = schema.get("additionalProperties")
        for key in list(value):
            sub = props.get(key, extra if isinstance(extra, Mapping) else None)
            if sub is not None:
                value[key] = _coerce(value[key], sub)
    return value


def coerce_config(config: dict[str, Any], schema_path: str | Path) -> dict[str, Any]:
    """Turn strings into the numbers, booleans, nulls, lists and mappings the schema asks for,
    in place (and return ``config``). A string the schema accepts stays a string; one that spells
    no allowed type stays too, and validation then names it."""
    _coerce(config, load_schema(str(schema_path)))
    return config
