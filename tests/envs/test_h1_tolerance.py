"""tolerance(): checked against its definition at hand-computed points."""

import math

import numpy as np
import pytest

from sphere_rl.envs.h1.tolerance import SIGMOIDS, decay, tolerance

INF = float("inf")
SMOOTH = ("gaussian", "hyperbolic", "long_tail", "reciprocal", "tanh_squared")
FINITE = ("cosine", "linear", "quadratic")


@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_value_is_one_inside_bounds(sigmoid):
    for x in (1.0, 1.5, 2.0):
        assert tolerance(x, bounds=(1.0, 2.0), margin=0.5, sigmoid=sigmoid) == 1.0
    inside = tolerance(np.array([1.0, 1.2, 2.0]), bounds=(1.0, 2.0), margin=0.5, sigmoid=sigmoid)
    np.testing.assert_array_equal(inside, 1.0)


@pytest.mark.parametrize("sigmoid", SIGMOIDS)
def test_value_at_margin_on_both_sides(sigmoid):
    kwargs = dict(bounds=(1.0, 2.0), margin=0.5, sigmoid=sigmoid, value_at_margin=0.3)
    assert tolerance(0.5, **kwargs) == pytest.approx(0.3)
    assert tolerance(2.5, **kwargs) == pytest.approx(0.3)
    np.testing.assert_allclose(tolerance(np.array([0.5, 2.5]), **kwargs), 0.3)


@pytest.mark.parametrize(
    ("sigmoid", "expected_at_half"),
    [
        # value_at_margin v = 0.1, distance half a margin, z = 0.5 * scale(v).
        ("gaussian", 0.1**0.25),  # exp(-z²/2) with scale² = -2 ln v  ->  v^(1/4)
        ("long_tail", 1 / (0.25 * 9 + 1)),  # scale² = 1/v - 1 = 9
        ("reciprocal", 1 / (0.5 * 9 + 1)),  # scale = 1/v - 1 = 9
        ("hyperbolic", 1 / math.cosh(0.5 * math.acosh(10))),
        ("tanh_squared", 1 - math.tanh(0.5 * math.atanh(math.sqrt(0.9))) ** 2),
        ("linear", 1 - 0.5 * 0.9),
        ("quadratic", 1 - 0.25 * 0.9),
        ("cosine", (1 + math.cos(math.pi * 0.5 * math.acos(-0.8) / math.pi)) / 2),
    ],
)
def test_shape_at_half_margin(sigmoid, expected_at_half):
    below = tolerance(-0.5, bounds=(0.0, 1.0), margin=1.0, sigmoid=sigmoid, value_at_margin=0.1)
    above = tolerance(1.5, bounds=(0.0, 1.0), margin=1.0, sigmoid=sigmoid, value_at_margin=0.1)
    assert below == pytest.approx(expected_at_half)
    assert above == pytest.approx(expected_at_half)


def test_finite_support_sigmoids_with_zero_value_at_margin():
    # HumanoidBench's usage: linear / quadratic with value_at_margin 0 reach exactly 0 at margin.
    x = np.array([0.0, 2.5, 5.0, 10.0, 12.0, -10.0])
    np.testing.assert_allclose(
        tolerance(x, margin=10, sigmoid="quadratic", value_at_margin=0.0),
        [1.0, 1 - 0.25**2, 0.75, 0.0, 0.0, 0.0],
    )
    np.testing.assert_allclose(
        tolerance(x, margin=10, sigmoid="linear", value_at_margin=0.0),
        [1.0, 0.75, 0.5, 0.0, 0.0, 0.0],
    )
    assert tolerance(0.5, margin=1.0, sigmoid="cosine", value_at_margin=0.0) == pytest.approx(0.5)
    assert tolerance(1.5, margin=1.0, sigmoid="cosine", value_at_margin=0.0) == 0.0


@pytest.mark.parametrize("sigmoid", SMOOTH)
def test_smooth_sigmoids_decrease_monotonically_but_stay_positive(sigmoid):
    d = np.linspace(0.0, 5.0, 51)
    values = decay(d, 0.1, sigmoid)
    assert values[0] == 1.0
    assert np.all(np.diff(values) < 0)
    assert np.all(values > 0)


def test_margin_zero_is_an_indicator():
    x = np.array([-0.1, 0.0, 0.5, 1.0, 1.1])
    np.testing.assert_array_equal(tolerance(x, bounds=(0.0, 1.0)), [0, 1, 1, 1, 0])
    assert tolerance(3.0, bounds=(0.0, 1.0)) == 0.0


def test_infinite_bounds_and_infinite_input():
    assert tolerance(1e9, bounds=(1.65, INF), margin=0.4) == 1.0
    assert tolerance(INF, bounds=(1.65, INF), margin=0.4) == 1.0
    np.testing.assert_array_equal(
        tolerance(np.array([INF, 1.65]), bounds=(1.65, INF), margin=0.4), 1.0
    )
    np.testing.assert_array_equal(
        tolerance(np.array([-INF, 0.0, INF]), bounds=(-INF, INF), margin=1.0), 1.0
    )
    np.testing.assert_array_equal(
        tolerance(np.array([-INF, INF]), bounds=(0.0, 1.0), margin=1.0), 0.0
    )


def test_nan_input_is_not_rewarded():
    assert math.isnan(tolerance(math.nan, bounds=(0.0, 1.0), margin=1.0))
    assert tolerance(math.nan, bounds=(0.0, 1.0)) == 0.0
    for bounds in ((0.0, 0.0), (0.0, 1.0), (0.0, INF), (-INF, 0.0), (-INF, INF)):
        assert np.isnan(tolerance(np.array([math.nan]), bounds=bounds, margin=1.0)).all()
    # dm_control's default sigmoid: gaussian with value 0.1 one margin below the bound.
    assert tolerance(1.65 - 0.4125, bounds=(1.65, INF), margin=0.4125) == pytest.approx(0.1)


def test_scalar_and_array_paths_agree():
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 3.0, size=200)
    all_bounds = ((-1.0, 0.5), (0.0, 0.0), (0.3, 0.3), (0.2, INF), (-INF, -0.4), (-INF, INF))
    for sigmoid in SIGMOIDS:
        v = 0.0 if sigmoid in FINITE else 0.2
        for bounds in all_bounds:
            kwargs = dict(bounds=bounds, margin=2.0, sigmoid=sigmoid, value_at_margin=v)
            vector = tolerance(x, **kwargs)
            scalar = [tolerance(float(xi), **kwargs) for xi in x]
            np.testing.assert_allclose(vector, scalar, rtol=1e-12, atol=1e-15)
            assert np.all((vector >= 0) & (vector <= 1))


def test_return_types_and_shapes():
    assert isinstance(tolerance(0.3, margin=1.0), float)
    assert isinstance(tolerance(np.float64(0.3), margin=1.0), float)
    assert tolerance(np.zeros((3, 4)), margin=1.0).shape == (3, 4)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(bounds=(1.0, 0.0)), "lower bound"),
        (dict(margin=-1.0), "margin"),
        (dict(margin=1.0, sigmoid="gaussian", value_at_margin=0.0), r"\(0, 1\)"),
        (dict(margin=1.0, sigmoid="gaussian", value_at_margin=1.0), r"\(0, 1\)"),
        (dict(margin=1.0, sigmoid="linear", value_at_margin=1.0), r"\[0, 1\)"),
        (dict(margin=1.0, sigmoid="sigmoidal"), "unknown sigmoid"),
    ],
)
def test_invalid_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tolerance(0.5, **kwargs)
