"""Workflow glue for the EK-FAC engine: sharded factor fitting and sharded scoring.

The maths lives in :mod:`llm_influence.influence`; this package only decides which sequences a
shard sees, loads artifacts and writes the tables described in ``docs/design.md``.
"""
