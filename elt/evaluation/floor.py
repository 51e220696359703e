"""The real-data floor: what a perfect model would score at the sample count the runs use.

A metric such as FID of n samples is biased upward at small n, and the tokenizer loses detail
before any generative model sees the data. Two numbers put a model's value in context:

  real            the metric of `n` held-out real images against the same reference statistics
                  (the best any model can expect at that n);
  reconstruction  the metric of the same images encoded and decoded by the tokenizer (the best a
                  model of these tokens can expect); with several families scored by the metric,
                  one per family's tokenizer, "reconstruction:<family>".

Each is measured on `draws` disjoint sets of n images (a seeded permutation of the held-out
split, so a split ordered by class still gives mixed draws): the mean and the std over draws,
and each draw's own spread as the metric reports it (the jackknife std for FID).
"""

from __future__ import annotations

import numpy as np

MAX_DRAWS = 3  # disjoint draws of n held-out images (fewer when the split is smaller)


def num_draws(num_heldout: int, num_samples: int, max_draws: int = MAX_DRAWS) -> int:
    """How many disjoint sets of `num_samples` the held-out split gives (0: not even one)."""
    return min(max_draws, num_heldout // num_samples)


def draw_indices(num_heldout: int, num_samples: int, draws: int, seed: int) -> list[np.ndarray]:
    """`draws` disjoint, seeded index sets of `num_samples` into the held-out split, each sorted."""
    order = np.random.default_rng(seed).permutation(num_heldout)
    return [np.sort(order[d * num_samples:(d + 1) * num_samples]) for d in range(draws)]


def _summary(results: list[dict], metric: str) -> dict:
    values = [float(r[metric]) for r in results]
    spreads = [r.get(f"{metric}_std") for r in results]
    return {
        "mean": float(np.mean(values)),
        "std": float(np.std(values, ddof=1)) if len(values) > 1 else None,  # over disjoint draws
        "values": values,
        "draw_std": (float(np.mean(spreads)) if all(s is not None for s in spreads) else None),
        "kid": float(np.mean([r["kid"] for r in results])) if all(r.get("kid") is not None for r in results) else None,
    }


def reconstruction_kind(family: str | None, num_families: int) -> str:
    """The floor kind of one family's reconstructions: "reconstruction" when it is the only family
    the metric scores, else "reconstruction:<family>"."""
    return "reconstruction" if num_families == 1 or family is None else f"reconstruction:{family}"


def real_data_floor(metric, ref_dir, images: np.ndarray, tokenizers, num_samples: int, seed: int,
                    max_draws: int = MAX_DRAWS, progress=None) -> dict:
    """{"draws", "num_samples", "real": {...}, <reconstruction kind>: {...}, ...} for uint8
    held-out images.

    `metric` scores uint8 images against `ref_dir` (elt.evaluation.metrics); `tokenizers`, a
    {family: tokenizer} mapping (or one tokenizer), encode and decode them (elt.tokenizers); the
    real images are scored once whatever their number. Raises ValueError when the split holds
    fewer than `num_samples` images: a floor at another n would not be comparable.
    """
    if hasattr(tokenizers, "encode"):
        tokenizers = {None: tokenizers}
    draws = num_draws(len(images), num_samples, max_draws)
    if draws == 0:
        raise ValueError(f"the held-out split has {len(images)} images, fewer than the "
                         f"{num_samples} samples each run is scored on")
    real, recon = [], {name: [] for name in tokenizers}
    for idx in draw_indices(len(images), num_samples, draws, seed):
        batch = images[idx]
        real.append(metric.score(batch, ref_dir))
        for name, tokenizer in tokenizers.items():
            recon[name].append(metric.score(np.asarray(tokenizer.decode(tokenizer.encode(batch))), ref_dir))
        if progress is not None:
            progress.update(1)
    out = {"draws": draws, "num_samples": num_samples, "real": _summary(real, metric.name)}
    for name, results in recon.items():
        out[reconstruction_kind(name, len(recon))] = _summary(results, metric.name)
    return out
