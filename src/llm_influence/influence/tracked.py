"""Which layers the engine tracks (the MLP linears by default, as in the paper) and their shapes
in homogeneous coordinates.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

from torch import nn

from .errors import ModuleMatchError


def conv1d_type() -> type | None:
    """transformers' GPT-2 ``Conv1D`` (weight stored as [in, out]), if transformers is loaded.

    A model holding a Conv1D has imported it, so looking it up in ``sys.modules`` is exact and
    spares the jobs that never build a model (eigenbasis, merge, gather) the transformers import.
    """
    return getattr(sys.modules.get("transformers.pytorch_utils"), "Conv1D", None)


def is_conv1d(module: nn.Module) -> bool:
    conv1d = conv1d_type()
    return conv1d is not None and isinstance(module, conv1d)


def trackable_types() -> tuple[type, ...]:
    conv1d = conv1d_type()
    return (nn.Linear,) if conv1d is None else (nn.Linear, conv1d)


# Default module patterns per architecture (regexes, re.search on the full module name): the MLP
# linears only, as in the paper.
DEFAULT_PATTERNS: dict[str, list[str]] = {
    "gpt_neox": [r"\.mlp\.dense_h_to_4h$", r"\.mlp\.dense_4h_to_h$"],
    "llama": [r"\.mlp\.gate_proj$", r"\.mlp\.up_proj$", r"\.mlp\.down_proj$"],
    "gpt2": [r"\.mlp\.c_fc$", r"\.mlp\.c_proj$"],
}
for _alias in ("qwen2", "qwen3", "mistral", "gemma", "gemma2", "olmo", "olmo2", "phi3"):
    DEFAULT_PATTERNS[_alias] = DEFAULT_PATTERNS["llama"]
GENERIC_PATTERNS = [r"(^|\.)mlp\."]


@dataclass(frozen=True)
class ModuleInfo:
    """Shape of one tracked layer in homogeneous coordinates."""

    name: str
    d_out: int
    d_in: int  # without the bias column
    bias: bool

    @property
    def d_in_h(self) -> int:
        return self.d_in + int(self.bias)


def module_info(name: str, module: nn.Module) -> ModuleInfo:
    if isinstance(module, nn.Linear):
        return ModuleInfo(name, module.out_features, module.in_features, module.bias is not None)
    if is_conv1d(module):
        d_in, d_out = module.weight.shape
        return ModuleInfo(name, d_out, d_in, module.bias is not None)
    raise ModuleMatchError(
        f"module {name!r} is a {type(module).__name__}; only nn.Linear and Conv1D are trackable"
    )


def default_patterns(model: nn.Module) -> list[str]:
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    return list(DEFAULT_PATTERNS.get(model_type, GENERIC_PATTERNS))


def find_tracked_modules(model: nn.Module, patterns: list[str] | None = None) -> list[str]:
    """Names (model order) of the trackable layers matching any pattern (regex, ``re.search``).

    ``None`` = the MLP linears of the architecture. Raises :class:`ModuleMatchError` for a pattern
    that matches no trackable layer, or when nothing at all matches.
    """
    explicit = patterns is not None
    pats = list(patterns) if explicit else default_patterns(model)
    compiled = []
    for p in pats:
        try:
            compiled.append(re.compile(p))
        except re.error as exc:
            raise ModuleMatchError(
                f"module pattern {p!r} is not a valid regular expression: {exc}"
            ) from exc
    types = trackable_types()
    trackable = [n for n, m in model.named_modules() if isinstance(m, types)]
    chosen = [n for n in trackable if any(c.search(n) for c in compiled)]
    if explicit:
        for p, c in zip(pats, compiled):
            if not any(c.search(n) for n in trackable):
                raise ModuleMatchError(
                    f"module pattern {p!r} matches no nn.Linear/Conv1D layer of {type(model).__name__}; "
                    f"trackable layers are e.g. {trackable[:6]}"
                )
    if not chosen:
        raise ModuleMatchError(
            f"no trackable (nn.Linear/Conv1D) layer of {type(model).__name__} matches {pats}; "
            f"pass module_patterns explicitly (trackable layers: {trackable[:6]}...)"
        )
    return chosen
