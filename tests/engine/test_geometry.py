"""Geometry conversions agree with SimpleITK for identity, flipped and oblique matrices."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from numpy.testing import assert_allclose, assert_array_equal

from engine.geometry import Geometry, axis_letters, irc_to_xyz, xyz_to_irc, xyz_to_irc_continuous


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    return q * np.sign(np.diag(r))  # a proper orthonormal matrix, possibly with det -1


def _geometries():
    rng = np.random.default_rng(42)
    yield "identity", Geometry((-100.0, -200.0, -300.0), (0.7, 0.7, 2.5))
    yield "flip-xy", Geometry((150.0, 160.0, -300.0), (0.6, 0.6, 1.25), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    yield "flip-z", Geometry((-150.0, -160.0, 20.0), (0.8, 0.8, 0.625), (1, 0, 0, 0, 1, 0, 0, 0, -1))
    for k in range(5):
        direction = _random_rotation(rng)
        spacing = rng.uniform(0.5, 3.0, size=3)
        origin = rng.uniform(-300, 300, size=3)
        yield f"oblique-{k}", Geometry(tuple(origin), tuple(spacing), tuple(direction.ravel()))


GEOMETRIES = list(_geometries())


def _sitk_image(geometry: Geometry) -> sitk.Image:
    image = sitk.Image(8, 8, 8, sitk.sitkInt16)
    image.SetOrigin(geometry.origin_xyz)
    image.SetSpacing(geometry.spacing_xyz)
    image.SetDirection(geometry.direction)
    return image


@pytest.mark.parametrize("name,geometry", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
def test_irc_to_xyz_matches_sitk(name: str, geometry: Geometry) -> None:
    image = _sitk_image(geometry)
    rng = np.random.default_rng(1)
    irc = rng.uniform(-20, 400, size=(50, 3))
    expected = np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(p[::-1])) for p in irc])
    assert_allclose(irc_to_xyz(geometry, irc), expected, atol=1e-6)
    assert_allclose(irc_to_xyz(geometry, irc[0]), expected[0], atol=1e-6)


@pytest.mark.parametrize("name,geometry", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
def test_xyz_to_irc_matches_sitk(name: str, geometry: Geometry) -> None:
    image = _sitk_image(geometry)
    rng = np.random.default_rng(2)
    irc = rng.uniform(0, 300, size=(50, 3))
    xyz = irc_to_xyz(geometry, irc)
    expected = np.array([image.TransformPhysicalPointToIndex(tuple(p))[::-1] for p in xyz])
    assert_array_equal(xyz_to_irc(geometry, xyz), expected)
    continuous = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(p))[::-1] for p in xyz])
    assert_allclose(xyz_to_irc_continuous(geometry, xyz), continuous, atol=1e-6)


@pytest.mark.parametrize("name,geometry", GEOMETRIES, ids=[g[0] for g in GEOMETRIES])
def test_round_trip_is_exact(name: str, geometry: Geometry) -> None:
    irc = np.random.default_rng(3).uniform(-50, 500, size=(100, 3))
    assert_allclose(xyz_to_irc_continuous(geometry, irc_to_xyz(geometry, irc)), irc, atol=1e-6)


def test_world_to_voxel_is_not_abs_difference() -> None:
    # A flipped x axis: world x decreases as the column grows. abs(world-origin)/spacing
    # would give the right column only by accident of the sign; check the direction is used.
    g = Geometry((100.0, 0.0, 0.0), (2.0, 1.0, 1.0), (-1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert_array_equal(xyz_to_irc(g, (90.0, 3.0, 4.0)), [4, 3, 5])
    assert_array_equal(xyz_to_irc(g, (110.0, 3.0, 4.0)), [4, 3, -5])


def test_rounding_half_up_like_itk() -> None:
    g = Geometry()
    assert_array_equal(xyz_to_irc(g, (0.5, 1.5, -0.5)), [0, 2, 1])


def test_axis_letters() -> None:
    assert axis_letters(Geometry()) == (("I", "S"), ("A", "P"), ("R", "L"))
    flipped = Geometry(direction=(-1, 0, 0, 0, -1, 0, 0, 0, -1))
    assert axis_letters(flipped) == (("S", "I"), ("P", "A"), ("L", "R"))


def test_invalid_geometry_refused() -> None:
    with pytest.raises(ValueError):
        Geometry(spacing_xyz=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError):
        Geometry(direction=(1, 0, 0, 1, 0, 0, 0, 0, 1))
