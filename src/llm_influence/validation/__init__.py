"""Validation study (Grosse et al. 2023, Fig. 3 and 6-7 kind): influence estimators against the exact
damped Gauss-Newton influence on small models, and rank-r query batching against full rank.

Entry point: :func:`llm_influence.validation.stage.validation_study`. See docs/validation.md.
"""

from .compare import correlation_table, mean_correlations, rank_study, task_scores
from .config import ValidationConfig
from .tasks import Task, build_task

__all__ = [
    "Task",
    "ValidationConfig",
    "build_task",
    "correlation_table",
    "mean_correlations",
    "rank_study",
    "task_scores",
]
