"""Typed settings shared by the masked-token families (maskgit, magvit): the per-exit loss and
the MaskGIT decoder. Each family subclasses them (its own defaults and docstrings, its params key).

Imported when params.yaml is parsed, so it imports nothing heavy: no jax, no flax.
"""

from __future__ import annotations

import dataclasses


def _fail(key: str, message: str):
    from elt.config import ConfigError  # pylint: disable=import-outside-toplevel

    raise ConfigError(key, message)


@dataclasses.dataclass(frozen=True)
class MaskedTrainConfig:
    """The per-exit loss of a masked-token family."""

    label_smoothing: float = 0.1  # GT = cross-entropy against (1-eps)*onehot + eps/K (Table 5)

    def check(self, key: str) -> None:
        if not 0.0 <= self.label_smoothing < 1.0:
            _fail(f"{key}.label_smoothing", f"must be in [0, 1), got {self.label_smoothing}")


@dataclasses.dataclass(frozen=True)
class MaskedSampleConfig:
    """The MaskGIT decoder (google-research/maskgit, paper Table 5)."""

    steps: int = 8  # K decoding steps (network evaluations per sample)
    temperature_bias: float = 0.5  # token temperature at step k: bias + scale * (1 - (k+1)/K)
    temperature_scale: float = 0.8
    choice_temperature: float = 4.5  # Gumbel noise on the confidences, annealed the same way

    def check(self, key: str) -> None:
        if self.steps < 1:
            _fail(f"{key}.steps", f"must be >= 1, got {self.steps}")
        if self.temperature_bias <= 0:
            # the last step has temperature = bias: it divides the logits
            _fail(f"{key}.temperature_bias", f"must be > 0, got {self.temperature_bias}")
        for name in ("temperature_scale", "choice_temperature"):
            if getattr(self, name) < 0:
                _fail(f"{key}.{name}", f"must be >= 0, got {getattr(self, name)}")
