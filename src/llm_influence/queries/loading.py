"""Query sets: YAML loading and validation with errors that name the query and the field.

The schema lives in ``workflow/schemas/queries.schema.yaml``; :data:`QUERY_SCHEMA` is the same
schema as a Python object (a test keeps the two identical) so that validation also works from an
installed package. Beyond the schema, :func:`load_query_set` checks what JSON-schema cannot:
duplicate names, dangling ``translation_of``/``variant_of`` links, unknown ``fact_id``s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

TAGS = ("factual", "role-play", "math", "code", "memorisation", "translation", "synthetic-order")
LANGUAGES = ("en", "es", "tr")
QUERY_ORDERS = ("forward", "flipped")
REQUIRED = ("name", "prompt", "completion", "language", "tags")

QUERY_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "description": "A query set (config/queries/*.yaml).",
    "type": "object",
    "additionalProperties": False,
    "required": ["queries"],
    "properties": {
        "description": {"type": "string"},
        "queries": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": list(REQUIRED),
                "properties": {
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9_.-]+$"},
                    "prompt": {"type": "string", "minLength": 1},
                    "completion": {"type": "string", "pattern": "\\S"},
                    "language": {"type": "string", "enum": list(LANGUAGES)},
                    "tags": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {"type": "string", "enum": list(TAGS)},
                    },
                    "translation_of": {"type": "string"},
                    "variant_of": {"type": "string"},
                    "fact_id": {"type": "string"},
                    "order": {"type": "string", "enum": list(QUERY_ORDERS)},
                    "description": {"type": "string"},
                },
            },
        },
    },
}


class QuerySetError(ValueError):
    """An invalid query set; the message lists every problem as ``query 'name', field 'f': why``."""


@dataclass(frozen=True)
class Query:
    name: str
    prompt: str
    completion: str
    language: str
    tags: tuple[str, ...]
    translation_of: str | None = None
    variant_of: str | None = None
    fact_id: str | None = None
    order: str = "forward"
    description: str | None = None
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def text(self) -> str:
        """The scored text: prompt and completion concatenated exactly."""
        return self.prompt + self.completion


def known_world_ids() -> set[str]:
    """Fact and passage ids fixed in code (valid for every seed): what ``fact_id`` may name."""
    from llm_influence.corpus.texts import PASSAGES
    from llm_influence.corpus.world import KEY_FACTS

    return {f.id for f in KEY_FACTS} | {p["id"] for p in PASSAGES}


def _label(item: Any, index: int) -> str:
    if isinstance(item, Mapping) and isinstance(item.get("name"), str) and item["name"]:
        return f"query {item['name']!r} (queries[{index}])"
    return f"query queries[{index}]"


def _schema_errors(data: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(QUERY_SCHEMA)
    items = data.get("queries") if isinstance(data, Mapping) else None
    errors = []
    for err in sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.path]):
        path = list(err.path)
        if len(path) >= 2 and path[0] == "queries" and isinstance(path[1], int):
            where = _label(items[path[1]], path[1])
            if len(path) == 2:
                if err.validator == "required":
                    missing = [k for k in REQUIRED if k not in err.instance]
                    errors.extend(f"{where}: field {k!r}: missing" for k in missing)
                    continue
                if err.validator == "additionalProperties":
                    extra = sorted(set(err.instance) - set(err.schema["properties"]))
                    allowed = ", ".join(err.schema["properties"])
                    errors.extend(
                        f"{where}: field {k!r}: unknown field (allowed: {allowed})" for k in extra
                    )
                    continue
                errors.append(f"{where}: {err.message}")
                continue
            fld = path[2]
            if fld == "tags" and err.validator == "enum":
                msg = f"unknown tag {err.instance!r} (allowed: {', '.join(TAGS)})"
            elif fld == "completion" and err.validator in ("pattern", "minLength"):
                msg = "empty completion"
            elif fld == "prompt" and err.validator == "minLength":
                msg = "empty prompt"
            else:
                msg = err.message
            errors.append(f"{where}: field {fld!r}: {msg}")
        else:
            where = ".".join(str(p) for p in path) or "<top level>"
            errors.append(f"{where}: {err.message}")
    return errors


def validate_query_data(data: Any, world_ids: Iterable[str] | None = None) -> list[Query]:
    """Validate parsed YAML; return the queries or raise :class:`QuerySetError` listing every problem."""
    if not isinstance(data, Mapping):
        raise QuerySetError("a query set must be a mapping with a 'queries' list")
    errors = _schema_errors(data)
    items = data.get("queries")
    if not isinstance(items, list):
        raise QuerySetError("\n".join(errors) or "'queries' must be a list")
    by_name: dict[str, int] = {}
    for i, item in enumerate(items):
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        if item["name"] in by_name:
            errors.append(
                f"{_label(item, i)}: field 'name': duplicate name (also queries[{by_name[item['name']]}])"
            )
        else:
            by_name[item["name"]] = i
    ids = set(known_world_ids() if world_ids is None else world_ids)
    for i, item in enumerate(items):
        if not isinstance(item, Mapping):
            continue
        where = _label(item, i)
        for link in ("translation_of", "variant_of"):
            target = item.get(link)
            if not isinstance(target, str):
                continue
            if target not in by_name:
                errors.append(f"{where}: field {link!r}: no query named {target!r} in this set")
            elif target == item.get("name"):
                errors.append(f"{where}: field {link!r}: a query cannot link to itself")
            elif link == "translation_of" and items[by_name[target]].get("language") == item.get(
                "language"
            ):
                errors.append(f"{where}: field 'translation_of': {target!r} has the same language")
        fid = item.get("fact_id")
        if isinstance(fid, str) and fid not in ids:
            errors.append(
                f"{where}: field 'fact_id': unknown fact or passage {fid!r} (known: {', '.join(sorted(ids))})"
            )
    if errors:
        raise QuerySetError("\n".join(errors))
    return [
        Query(
            name=item["name"],
            prompt=item["prompt"],
            completion=item["completion"],
            language=item["language"],
            tags=tuple(item["tags"]),
            translation_of=item.get("translation_of"),
            variant_of=item.get("variant_of"),
            fact_id=item.get("fact_id"),
            order=item.get("order", "forward"),
            description=item.get("description"),
        )
        for item in items
    ]


def load_query_set(path: str | Path, world_ids: Iterable[str] | None = None) -> list[Query]:
    """Load and validate a query YAML file.

    Raises :class:`QuerySetError` (a ``ValueError``) naming the file, and for each problem the
    query and the field: a missing field, an unknown tag or field, an empty completion, a
    duplicate name, a dangling ``translation_of``/``variant_of``, an unknown ``fact_id``.
    ``world_ids`` overrides the fact/passage ids a ``fact_id`` may name (default: the ids fixed in
    :mod:`llm_influence.corpus.world`).
    """
    path = Path(path)
    if not path.is_file():
        raise QuerySetError(f"query file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise QuerySetError(f"{path}: not valid YAML: {exc}") from exc
    try:
        return validate_query_data(data, world_ids)
    except QuerySetError as exc:
        raise QuerySetError(f"{path}:\n  " + str(exc).replace("\n", "\n  ")) from None


def token_lengths(queries: list[Query], tokenizer) -> dict[str, int]:
    """Number of tokens of prompt + completion per query (no special tokens, as in training)."""
    enc = tokenizer([q.text for q in queries], add_special_tokens=False)["input_ids"]
    return {q.name: len(ids) for q, ids in zip(queries, enc)}


def check_query_lengths(queries: list[Query], tokenizer, max_len: int) -> dict[str, int]:
    """Raise :class:`QuerySetError` naming every query whose prompt + completion exceeds ``max_len`` tokens."""
    lengths = token_lengths(queries, tokenizer)
    errors = [
        f"query {name!r}: fields 'prompt' + 'completion': {n} tokens exceed the context of {max_len} tokens"
        for name, n in lengths.items()
        if n > max_len
    ]
    if errors:
        raise QuerySetError("\n".join(errors))
    return lengths
