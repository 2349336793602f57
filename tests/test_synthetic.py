"""make_nuclei: the hidden traits and the class separation it documents."""

import numpy as np
import pytest

from ai4cellfate.datasets import make_nuclei

TRAITS = ["size_trait", "brightness_trait"]


def _mean_shift(params, y):
    return (params[y == 1][TRAITS].mean() - params[y == 0][TRAITS].mean()).to_numpy()


@pytest.mark.parametrize("direction, expected", [
    ((1, 1), (3.3 / np.sqrt(2), 3.3 / np.sqrt(2))),
    ((1, 0), (3.3, 0.0)),
    ((2, 1), (3.3 * 2 / np.sqrt(5), 3.3 / np.sqrt(5))),
    ((0, -3), (0.0, -3.3)),
])
def test_class_means_are_class_sep_apart_along_direction(direction, expected):
    X, y, params = make_nuclei(20000, image_size=8, direction=direction,
                               return_params=True, random_state=0)
    # standard error of a difference of two means of 10000 unit Gaussians: 0.014
    np.testing.assert_allclose(_mean_shift(params, y), expected, atol=0.06)
    assert np.all(params[TRAITS].std() < np.sqrt(1 + (np.asarray(expected) / 2) ** 2) + 0.05)


def test_traits_show_in_the_image():
    X, y, params = make_nuclei(400, return_params=True, random_state=1)
    area = (X > 0).sum(axis=(1, 2))
    np.testing.assert_array_equal(area, params["area"])
    assert np.corrcoef(params["size_trait"], area)[0, 1] > 0.9
    assert np.corrcoef(params["brightness_trait"], params["mean_intensity"])[0, 1] > 0.9


def test_default_data_are_unchanged_by_the_direction_parameter():
    a = make_nuclei(50, random_state=3)
    b = make_nuclei(50, direction=(5, 5), random_state=3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])


@pytest.mark.parametrize("direction", [(0, 0), (1,), (1, np.nan), "size", 3])
def test_bad_direction(direction):
    with pytest.raises(ValueError, match="direction must be two finite numbers"):
        make_nuclei(10, direction=direction)
