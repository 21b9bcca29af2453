"""Named errors: bad input fails loudly, naming the thing, never as a silent wrong score."""

from __future__ import annotations


class InfluenceError(ValueError):
    """Base class of the influence engine's input errors."""


class ModuleMatchError(InfluenceError):
    """A module pattern matched nothing, or the model has no trackable layer."""


class EmptyCompletionError(InfluenceError):
    """A query has no token that counts (all shifted labels are -100)."""


class SequenceTooLongError(InfluenceError):
    """A batch is longer than the model's context."""


class NonFiniteGradientError(FloatingPointError):
    """NaN/Inf in activations or gradients of a tracked layer."""


class FactorMismatchError(InfluenceError):
    """Factors were fitted on a different model (fingerprint or module layout differs)."""


class RefinementError(FloatingPointError):
    """Conjugate gradients broke down (the operator is not positive definite for a query)."""
