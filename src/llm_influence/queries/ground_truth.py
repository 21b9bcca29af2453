"""Ground-truth proponents of each query, read from the corpus manifest.

For a query with a ``fact_id`` (a fact or a memorised passage of the world):

* ``proponents``: documents stating the fact in the query's order (for a ``forward`` query the
  fact's ``forward`` documents, for a ``flipped`` probe its ``flipped`` documents; for a passage,
  the documents containing it), in any language (filter on the manifest's ``language`` for
  same-language truth);
* ``proponents_flipped``: documents stating it in the opposite order with the relation words kept;
* ``proponents_flipped_norelation``: documents with the answer before the subject and no relation
  words.

Queries without a ``fact_id`` have empty lists; their truth is categorical (the manifest category).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from llm_influence.queries.loading import Query, QuerySetError

_OPPOSITE = {"forward": "flipped", "flipped": "forward"}


def fact_index(manifest: pd.DataFrame) -> dict[tuple[str, str], list[int]]:
    """(fact id, order) -> sorted doc ids."""
    index: dict[tuple[str, str], list[int]] = {}
    for doc_id, fact_ids, order in zip(manifest["doc_id"], manifest["fact_ids"], manifest["order"]):
        if order is None or (isinstance(order, float) and pd.isna(order)):
            continue
        for fid in fact_ids:
            index.setdefault((str(fid), str(order)), []).append(int(doc_id))
    return {k: sorted(v) for k, v in index.items()}


def resolve_proponents(
    queries: list[Query], manifest: pd.DataFrame, world: dict[str, Any]
) -> pd.DataFrame:
    """One row per query: ``name``, ``proponents``, ``proponents_flipped``, ``proponents_flipped_norelation``."""
    known = {f["id"] for f in world.get("facts", [])} | {p["id"] for p in world.get("passages", [])}
    synthetic = world.get("source") == "synthetic"
    index = fact_index(manifest)
    rows = []
    for q in queries:
        fwd: list[int] = []
        flp: list[int] = []
        nor: list[int] = []
        if q.fact_id is not None:
            if synthetic and q.fact_id not in known:
                raise QuerySetError(
                    f"query {q.name!r}: field 'fact_id': {q.fact_id!r} is not in the corpus world"
                )
            fwd = index.get((q.fact_id, q.order), [])
            flp = index.get((q.fact_id, _OPPOSITE[q.order]), [])
            nor = index.get((q.fact_id, "flipped_norelation"), [])
        rows.append(
            {
                "name": q.name,
                "proponents": fwd,
                "proponents_flipped": flp,
                "proponents_flipped_norelation": nor,
            }
        )
    return pd.DataFrame(rows)
