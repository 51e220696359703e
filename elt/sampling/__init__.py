"""Samplers. MaskGIT any-time sampler: static K steps, dynamic loop count L."""

from elt.sampling.maskgit import SamplerConfig, make_sampler, masked_count_schedule

__all__ = ["SamplerConfig", "make_sampler", "masked_count_schedule"]
