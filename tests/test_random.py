"""Counter-based random numbers of the noise and dropout layers
(ai4cellfate._random), checked against an independent NumPy computation of
the same hash and against the distributions they must follow."""

import keras
import numpy as np
import pytest
from keras import ops
from scipy import stats

from ai4cellfate import _random
from ai4cellfate._random import CounterDropout, CounterGaussianNoise

pytestmark = pytest.mark.backend


def _lowbias32(x):
    x = x.astype(np.uint64) & 0xFFFFFFFF
    x ^= x >> 16
    x = (x * 0x7FEB352D) & 0xFFFFFFFF
    x ^= x >> 15
    x = (x * 0x846CA68B) & 0xFFFFFFFF
    x ^= x >> 16
    return x


def _reference_bits(n, seed0, seed1):
    """The documented construction, in plain NumPy (64-bit integers)."""
    key = _lowbias32(_lowbias32(np.array([(seed0 * 0x9E3779B9 + 0x632BE5AB) & 0xFFFFFFFF]))
                     ^ seed1)[0]
    counter = np.arange(n, dtype=np.uint64)
    return _lowbias32((_lowbias32(counter ^ key) + key) & 0xFFFFFFFF)


@pytest.mark.parametrize("seed", [(0, 0), (1, 0), (1, 1), (4021, 77), (2**31 + 5, 3)])
def test_bits_match_an_independent_numpy_computation(seed):
    got = ops.convert_to_numpy(_random.random_bits((7, 11, 3), np.array(seed)))
    want = _reference_bits(7 * 11 * 3, *seed).reshape(7, 11, 3)
    np.testing.assert_array_equal(got.astype(np.uint64), want)


def test_bits_are_uniform_and_streams_differ():
    a = ops.convert_to_numpy(_random.random_bits((100_000,), np.array([3, 0]))).astype(float)
    b = ops.convert_to_numpy(_random.random_bits((100_000,), np.array([3, 1]))).astype(float)
    c = ops.convert_to_numpy(_random.random_bits((100_000,), np.array([4, 0]))).astype(float)
    for words in (a, b, c):
        assert stats.kstest(words / 2**32, "uniform").pvalue > 1e-3
        # every bit is set half of the time
        bits = (words.astype(np.uint64)[:, None] >> np.arange(32, dtype=np.uint64)) & 1
        np.testing.assert_allclose(bits.mean(axis=0), 0.5, atol=0.01)
    # neighbouring counters and neighbouring seeds are uncorrelated
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < 0.02
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.02 and abs(np.corrcoef(a, c)[0, 1]) < 0.02


def test_normal_is_standard_normal_and_finite():
    z = ops.convert_to_numpy(_random.normal((200_000,), np.array([11, 2])))
    assert np.isfinite(z).all()
    assert abs(z.mean()) < 0.01 and abs(z.std() - 1.0) < 0.01
    assert stats.kstest(z, "norm").pvalue > 1e-3
    # tails: P(|z| > 2) = 0.0455, P(|z| > 3) = 0.0027
    assert np.mean(np.abs(z) > 2) == pytest.approx(0.0455, abs=0.003)
    assert np.mean(np.abs(z) > 3) == pytest.approx(0.0027, abs=0.0008)
    assert np.abs(z).max() < 5.4


def test_dropout_rate_and_scaling():
    x = np.full((2000, 100), 2.0, "float32")
    out = ops.convert_to_numpy(_random.dropout(x, 0.3, np.array([5, 9])))
    kept = out != 0
    assert kept.mean() == pytest.approx(0.7, abs=0.005)
    np.testing.assert_allclose(out[kept], 2.0 / 0.7, rtol=1e-6)
    again = ops.convert_to_numpy(_random.dropout(x, 0.3, np.array([5, 9])))
    np.testing.assert_array_equal(out, again)
    other = ops.convert_to_numpy(_random.dropout(x, 0.3, np.array([5, 10])))
    assert (kept != (other != 0)).mean() > 0.3


def test_noise_layer_is_seeded_advances_and_is_identity_in_inference():
    x = np.zeros((64, 50), "float32")
    a, b = CounterGaussianNoise(0.5, seed=3), CounterGaussianNoise(0.5, seed=3)
    first = ops.convert_to_numpy(a(x, training=True))
    np.testing.assert_array_equal(first, ops.convert_to_numpy(b(x, training=True)))
    second = ops.convert_to_numpy(a(x, training=True))
    assert not np.array_equal(first, second)  # the seed state advanced
    assert np.std(first) == pytest.approx(0.5, rel=0.05)
    np.testing.assert_array_equal(ops.convert_to_numpy(a(x, training=False)), x)
    other = ops.convert_to_numpy(CounterGaussianNoise(0.5, seed=4)(x, training=True))
    assert abs(np.corrcoef(first.ravel(), other.ravel())[0, 1]) < 0.05


def test_dropout_layer_drops_the_rate_and_round_trips_its_config():
    layer = CounterDropout(0.3, seed=1)
    x = np.ones((400, 50), "float32")
    out = ops.convert_to_numpy(layer(x, training=True))
    assert (out == 0).mean() == pytest.approx(0.3, abs=0.02)
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(x, training=False)), x)
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(clone) is CounterDropout and clone.rate == 0.3 and clone.seed == 1


def test_counter_generator_is_used_on_jax_and_tensorflow_only():
    layer = CounterGaussianNoise(1.0, seed=0)
    x = np.zeros((3, 4), "float32")
    state = ops.convert_to_numpy(layer.seed_generator.state).copy()
    got = ops.convert_to_numpy(layer(x, training=True))
    counter = ops.convert_to_numpy(_random.normal((3, 4), state))
    if keras.backend.backend() in ("jax", "tensorflow"):
        np.testing.assert_allclose(got, counter, rtol=1e-6, atol=1e-7)
    else:  # PyTorch keeps Keras' own draw
        assert not np.allclose(got, counter)
