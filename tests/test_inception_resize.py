"""The jnp TF1 bilinear resize against tf.compat.v1.image.resize_bilinear (the TF FID graph's)."""
import numpy as np
import pytest

from elt.evaluation.resize import preprocess_uint8, resize_bilinear_tf1


@pytest.mark.parametrize("shape", [(8, 8), (32, 32), (32, 24), (64, 300), (300, 299), (299, 299)])
def test_matches_tf1_resize_bilinear(shape):
    import tensorflow as tf

    rng = np.random.default_rng(sum(shape))
    images = rng.integers(0, 256, size=(2, *shape, 3)).astype(np.uint8)
    ours = np.asarray(resize_bilinear_tf1(images, (299, 299)))
    ref = tf.compat.v1.image.resize_bilinear(images.astype(np.float32), [299, 299], align_corners=False,
                                             half_pixel_centers=False).numpy()
    # Same float32 taps as TF (computed in numpy), so only the lerp arithmetic can differ (FMA
    # contraction, order): each side is within 5 roundings (half-ulp 2^-17 below 256, the integer
    # differences are exact) of the exact lerp, so they differ by <= 10 * 7.6e-6 < 1e-4. Measured: 0.
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=0)


def test_hand_computed_2x2_to_3x3():
    # scale = 2/3: source rows/cols 0, 2/3, 4/3 -> taps (0,1,2/3), (1,1,1/3 clamped at the edge).
    img = np.array([[0, 90], [180, 255]], np.uint8)[None, :, :, None]
    out = np.asarray(resize_bilinear_tf1(img, (3, 3)))[0, :, :, 0]
    top = [0, 60, 90]
    bottom = [180, 180 + 75 * 2 / 3, 255]
    mid = [t + (b - t) * 2 / 3 for t, b in zip(top, bottom)]
    np.testing.assert_allclose(out, [top, mid, bottom], atol=1e-4)


def test_preprocess_is_x_over_128_minus_1_without_resize_at_299():
    values = np.array([0, 64, 128, 255], np.uint8)
    images = np.broadcast_to(values[:, None, None, None], (4, 299, 299, 3))
    x = np.asarray(preprocess_uint8(images))
    assert x.shape == (4, 299, 299, 3)
    np.testing.assert_array_equal(x[:, 0, 0, 0], [-1.0, -0.5, 0.0, 127 / 128])
