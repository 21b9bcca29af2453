"""The one script of every rule: run the stage entry point named in ``params.entry``.

The repository's ``src/`` goes first on ``sys.path`` so that the code that runs is the code whose
files the rule lists as inputs (also under ``--use-conda``, where the package is not installed).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parents[1] / "src"))  # noqa: F821

from llm_influence.workflow.runner import run_rule  # noqa: E402

run_rule(snakemake)  # noqa: F821  (injected by Snakemake)
