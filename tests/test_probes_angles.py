"""cosine / angle_degrees against hand-computed values, sign invariance, zero vectors and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from workbench.probes import angle_degrees, cosine


@pytest.mark.parametrize(
    ("a", "b", "cos", "degrees"),
    [
        ([1.0, 0.0], [1.0, 1.0], 1 / math.sqrt(2), 45.0),
        ([1.0, 0.0], [-1.0, 1.0], -1 / math.sqrt(2), 135.0),
        ([1.0, 2.0, 0.0], [-2.0, 1.0, 0.0], 0.0, 90.0),
        ([3.0, 0.0], [2.0, 0.0], 1.0, 0.0),
        ([3.0, 0.0], [-2.0, 0.0], -1.0, 180.0),
        ([1.0, 0.0], [1.0, math.sqrt(3)], 0.5, 60.0),
    ],
)
def test_cosine_and_angle_on_hand_made_vectors(a, b, cos, degrees):
    a, b = torch.tensor(a), torch.tensor(b)
    assert cosine(a, b) == pytest.approx(cos, abs=1e-7)
    assert angle_degrees(a, b) == pytest.approx(degrees, abs=1e-5)
    assert cosine(a, b, sign_invariant=True) == pytest.approx(abs(cos), abs=1e-7)
    assert angle_degrees(a, b, sign_invariant=True) == pytest.approx(min(degrees, 180 - degrees), abs=1e-5)


def test_sign_invariant_angle_is_the_same_for_v_and_minus_v():
    generator = torch.Generator().manual_seed(0)
    g, v = torch.randn(50, generator=generator), torch.randn(50, generator=generator)
    acute = angle_degrees(g, v, sign_invariant=True)
    assert acute == pytest.approx(angle_degrees(g, -v, sign_invariant=True), abs=1e-12)
    assert acute == pytest.approx(min(angle_degrees(g, v), angle_degrees(g, -v)), abs=1e-12)
    assert angle_degrees(g, v) + angle_degrees(g, -v) == pytest.approx(180.0, abs=1e-10)
    assert 0.0 <= acute <= 90.0


def test_tiny_angles_keep_their_digits():
    """acos(cos) would return 0 here: cos = 1 − 5e-19 rounds to 1 in float64."""
    a = torch.tensor([1.0, 0.0], dtype=torch.float64)
    b = torch.tensor([1.0, 1e-9], dtype=torch.float64)
    assert angle_degrees(a, b) == pytest.approx(math.degrees(1e-9), rel=1e-9)
    assert angle_degrees(a, -b) == pytest.approx(180.0 - math.degrees(1e-9), rel=1e-15)


def test_zero_and_non_finite_vectors_give_nan():
    zero, v = torch.zeros(3), torch.tensor([1.0, 2.0, 3.0])
    assert math.isnan(cosine(zero, v))
    assert math.isnan(angle_degrees(v, zero))
    assert math.isnan(angle_degrees(zero, zero, sign_invariant=True))
    assert math.isnan(cosine(torch.tensor([math.nan, 1.0, 0.0]), v))


def test_per_parameter_lists_equal_their_flat_vectors():
    generator = torch.Generator().manual_seed(1)
    pieces_a = [torch.randn(3, 4, generator=generator), torch.randn(5, generator=generator)]
    pieces_b = [torch.randn(3, 4, generator=generator), torch.randn(5, generator=generator)]
    flat_a = torch.cat([p.flatten() for p in pieces_a])
    flat_b = torch.cat([p.flatten() for p in pieces_b])
    assert cosine(pieces_a, pieces_b) == pytest.approx(cosine(flat_a, flat_b), abs=1e-15)
    assert angle_degrees(pieces_a, flat_b) == pytest.approx(angle_degrees(flat_a, flat_b), abs=1e-12)


def test_bad_input_names_the_parameter():
    with pytest.raises(ValueError, match="a and b must have the same number of elements"):
        cosine(torch.ones(3), torch.ones(4))
    with pytest.raises(ValueError, match="a must be a flat"):
        angle_degrees(torch.ones(2, 2), torch.ones(4))
    with pytest.raises(ValueError, match="b must be a flat"):
        angle_degrees(torch.ones(4), [])
