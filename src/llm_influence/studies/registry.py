"""The one list of studies. Rules, the summary and the tests derive theirs from :data:`STUDIES`.

Adding a study is one entry here plus its module (docs/workflow.md "Adding a stage"): a study
with ``rule="study"`` runs in the shared rule over the score tables and its module exposes
``run(inputs, cfg) -> metrics`` (:mod:`llm_influence.studies.stage`); a study with its own rule
(validation) names that rule. Every study's module (``claims`` when it differs) defines
``CLAIMS``, the summary rows judged on its metrics; the summary lists them in this order.

Dependency-free on purpose: the Snakefile imports it at parse time.
"""

from __future__ import annotations

from dataclasses import dataclass

SHARED_RULE = "study"


@dataclass(frozen=True)
class Study:
    name: str  # results/studies/<name>/
    rule: str = SHARED_RULE  # the rule that writes it
    claims: str = ""  # module defining CLAIMS (default: the study's module)
    section: str = "studies"  # config: the block studies.<name>, or a top-level section of its own

    @property
    def module(self) -> str:
        """``llm_influence.studies.<name>``: ``CLAIMS``, and for the shared rule ``run(inputs,
        cfg)`` and the figure functions (a study with its own rule keeps its run elsewhere)."""
        return f"llm_influence.studies.{self.name}"

    @property
    def claims_module(self) -> str:
        return self.claims or self.module


STUDIES: tuple[Study, ...] = (
    Study("sparsity"),
    Study("scale"),
    Study("crosslingual"),
    Study("roleplay"),
    Study("orderflip"),
    Study("layers"),
    Study("tokens"),
    Study("memorisation"),
    Study("validation", rule="validation"),  # run: llm_influence.validation.stage
    # run: llm_influence.counterfactual.study; settings: the top-level counterfactual section
    Study("counterfactual", rule="counterfactual", section="counterfactual"),
)

NAMES: tuple[str, ...] = tuple(s.name for s in STUDIES)
SHARED: tuple[str, ...] = tuple(s.name for s in STUDIES if s.rule == SHARED_RULE)


def study(name: str) -> Study:
    for s in STUDIES:
        if s.name == name:
            return s
    raise KeyError(f"unknown study {name!r}; studies: {', '.join(NAMES)}")
