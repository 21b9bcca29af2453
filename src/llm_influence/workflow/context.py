"""The one object every stage entry point receives.

A Snakemake rule calls ``llm_influence.workflow.runner.run_rule`` which builds a ``StageContext``
(paths already pointing at temporary locations that are moved into place on success) and calls the
stage function ``fn(ctx) -> dict | None``. The returned dict, if any, is merged into the stage's
provenance record (e.g. metrics). Stage functions can equally be called from tests or notebooks by
building a ``StageContext`` by hand.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class StageContext:
    rule: str
    config: dict[str, Any]  # the whole validated config (sections per rule + top-level keys)
    input: dict[str, Any]  # name -> Path or list[Path]
    output: dict[str, Path]  # name -> Path (temporary location while the stage runs)
    wildcards: dict[str, str] = field(default_factory=dict)
    threads: int = 1
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("llm_influence"))

    def section(self, name: str | None = None) -> dict[str, Any]:
        """The config section of this rule (or another named one). No fallback: the schema
        requires every section, so a missing one is a caller's error, named here."""
        key = name or self.rule
        if key not in self.config:
            raise KeyError(
                f"rule {self.rule}: the config has no section {key!r} (has: {sorted(self.config)})"
            )
        return self.config[key]

    @property
    def seed(self) -> int:
        return int(self.config["seed"])

    @property
    def device(self) -> str:
        return str(self.config["device"])
