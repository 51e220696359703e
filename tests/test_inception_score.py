"""Inception Score from pool features: the classifier weights WITHOUT the bias (improved-gan / ADM
evaluator / torch-fidelity convention), against hand-computed values."""
import math

import numpy as np
import pytest

from elt.evaluation import fid
from elt.evaluation.weights import FidWeights


def _weights(fc_weight, fc_bias):
    return FidWeights(convs={}, fc_weight=np.asarray(fc_weight, np.float64), fc_bias=np.asarray(fc_bias, np.float64))


def test_is_uniform_predictions_is_one():
    # Zero weights: every p(y|x) uniform, KL = 0, IS = 1 (whatever the bias: it is ignored).
    feats = np.random.default_rng(0).normal(size=(40, 16))
    report = fid.inception_score_report(feats, _weights(np.zeros((10, 16)), np.arange(10.0)), splits=4)
    assert report == pytest.approx({"is_mean": 1.0, "is_std": 0.0})


def test_is_ignores_the_classifier_bias():
    # k distinct confident classes with equal counts: IS = k. A bias that puts every sample in class
    # 0 would give IS = 1 if it were added.
    k = 6
    feats = np.repeat(np.eye(k), 3, axis=0)  # 3 samples per class
    weight = 1e3 * np.eye(k)  # logits = 1e3 * one-hot
    bias = 1e5 * np.eye(k)[0]
    report = fid.inception_score_report(feats, _weights(weight, bias), splits=1)
    assert report["is_mean"] == pytest.approx(k, rel=1e-9) and report["is_std"] == 0.0
    # The same logits with the bias added would score 1: the test can tell the two conventions apart.
    assert fid.inception_score(feats @ weight.T + bias, splits=1)[0] == pytest.approx(1.0)


def test_is_soft_predictions_by_hand():
    # p(y|x1) = (3/4, 1/4), p(y|x2) = (1/4, 3/4): p(y) = (1/2, 1/2),
    # KL = 3/4 ln(3/2) + 1/4 ln(1/2) for both, IS = (3/2)^(3/4) (1/2)^(1/4) = 1.1066.
    weight = np.log([[0.75, 0.25], [0.25, 0.75]])  # logits = feats @ weight.T
    report = fid.inception_score_report(np.eye(2), _weights(weight, [5.0, -5.0]), splits=1)
    assert report["is_mean"] == pytest.approx(1.5 ** 0.75 * 0.5 ** 0.25, rel=1e-12)
    assert report["is_mean"] == pytest.approx(math.exp(0.75 * math.log(1.5) + 0.25 * math.log(0.5)))
