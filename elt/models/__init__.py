"""Model families by name. ``build_model("maskgit", **MaskGITConfig fields)``.

Other families (diffusion, video) register a builder in ``MODEL_FAMILIES``.
"""

from __future__ import annotations

from typing import Any, Callable

from elt.models.maskgit import MaskedImageELT, MaskGITConfig
from elt.models.scales import SCALES, Scale, get_scale


def _build_maskgit(**config: Any) -> MaskedImageELT:
    return MaskedImageELT(MaskGITConfig(**config))


MODEL_FAMILIES: dict[str, Callable[..., Any]] = {"maskgit": _build_maskgit}


def build_model(family: str, **config: Any):
    if family not in MODEL_FAMILIES:
        raise ValueError(f"unknown model family {family!r}; known families: {sorted(MODEL_FAMILIES)}")
    return MODEL_FAMILIES[family](**config)


__all__ = ["MODEL_FAMILIES", "SCALES", "MaskGITConfig", "MaskedImageELT", "Scale", "build_model", "get_scale"]
