"""EK-FAC influence engine (Grosse et al. 2023) on the MLP layers of HF causal LMs.

Fit:   cov = fit_covariance(model, batches, cfg); eig = compute_eigenbasis(cov);
       corr = fit_eigen_correction(model, batches, eig, cfg); factors = build_factors(eig, corr, cfg)
       (or fit_factors(model, batches, cfg)).
Score: q = precondition_queries(model, factors, query_batches, scfg);
       scores = score_training(model, factors, q, train_batches, scfg)  (or iter_scores to stream).
Fused (what the workflow runs): groups = build_query_groups(model, factors, query_batches, scfg);
       out = score_groups(model, factors, groups, train_batches, scfg)  -> {group: GroupScores}.
Refine (optional): q = refine_queries(model, factors, query_batches, fit_batches, RefineConfig(steps=k),
       scfg).queries: k steps of EK-FAC-preconditioned CG on the fit set's G + λ.
Losses: every entry point takes ``task=`` (:mod:`.tasks`): CAUSAL_LM (default, the paper's summed
token cross-entropy), RegressionTask() (MSE, Gaussian output), ClassificationTask() (cross-entropy),
or any Task subclass (forward pass, training loss with sampled targets, measurement, output Hessian).
No Snakemake imports here; the stage glue lives in llm_influence.attribution.
"""

from .arguments import FitConfig, ScoreConfig
from .errors import (
    EmptyCompletionError,
    FactorMismatchError,
    InfluenceError,
    ModuleMatchError,
    NonFiniteGradientError,
    RefinementError,
    SequenceTooLongError,
)
from .factors import CorrectionStats, CovarianceStats, Eigenbasis, Factors, check_factors
from .fitting import (
    build_factors,
    compute_eigenbasis,
    fit_covariance,
    fit_eigen_correction,
    fit_factors,
)
from .fused import GroupScores, score_groups
from .labels import make_batches, sample_targets
from .modules import model_fingerprint
from .query_groups import (
    DEFAULT_GROUPS,
    GroupBuilder,
    QueryInputs,
    build_query_groups,
    preconditioned,
    query_gradients,
    raw,
)
from .refine import RefineConfig, RefinedQueries, refine_queries
from .scoring import (
    PreconditionedQueries,
    ScoreBatch,
    Scores,
    iter_scores,
    precondition_queries,
    score_training,
    self_influence,
)
from .tasks import CAUSAL_LM, CausalLMTask, ClassificationTask, RegressionTask, Task
from .topk import TopK
from .tracked import find_tracked_modules

__all__ = [
    "CAUSAL_LM",
    "CausalLMTask",
    "ClassificationTask",
    "RegressionTask",
    "Task",
    "DEFAULT_GROUPS",
    "GroupBuilder",
    "GroupScores",
    "QueryInputs",
    "TopK",
    "build_query_groups",
    "preconditioned",
    "query_gradients",
    "raw",
    "score_groups",
    "CorrectionStats",
    "CovarianceStats",
    "Eigenbasis",
    "EmptyCompletionError",
    "FactorMismatchError",
    "Factors",
    "FitConfig",
    "InfluenceError",
    "ModuleMatchError",
    "NonFiniteGradientError",
    "PreconditionedQueries",
    "RefineConfig",
    "RefinedQueries",
    "RefinementError",
    "ScoreBatch",
    "ScoreConfig",
    "Scores",
    "SequenceTooLongError",
    "build_factors",
    "check_factors",
    "compute_eigenbasis",
    "find_tracked_modules",
    "fit_covariance",
    "fit_eigen_correction",
    "fit_factors",
    "iter_scores",
    "make_batches",
    "model_fingerprint",
    "precondition_queries",
    "refine_queries",
    "sample_targets",
    "score_training",
    "self_influence",
]
