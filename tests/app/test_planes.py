"""Plane layouts: radiological convention, letters, mm geometry, slicing (no Qt)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from app.planes import Plane, all_layouts, display_slice, patient_axes, plane_layout, slice_2d
from app.slice_blocks import SliceBlocks
from engine.geometry import Geometry, irc_to_xyz

IDENTITY = (1, 0, 0, 0, 1, 0, 0, 0, 1)
FLIP_X = (-1, 0, 0, 0, 1, 0, 0, 0, 1)
FLIP_XY = (-1, 0, 0, 0, -1, 0, 0, 0, 1)


def _screen_image(volume: np.ndarray, layout, index: int) -> np.ndarray:
    """What the screen shows: the slice with the display flips applied."""
    image = slice_2d(volume, layout, index)
    if layout.u_flip:
        image = image[:, ::-1]
    if layout.v_flip:
        image = image[::-1, :]
    return image


@pytest.mark.parametrize(
    ("plane", "slice_axis", "u_axis", "v_axis", "u_flip", "v_flip", "letters"),
    [
        (Plane.AXIAL, 0, 2, 1, False, False, ("R", "L", "A", "P")),
        (Plane.CORONAL, 1, 2, 0, False, True, ("R", "L", "S", "I")),
        (Plane.SAGITTAL, 2, 1, 0, False, True, ("A", "P", "S", "I")),
    ],
)
def test_identity_layouts(plane, slice_axis, u_axis, v_axis, u_flip, v_flip, letters) -> None:
    layout = plane_layout(Geometry((0, 0, 0), (0.7, 0.8, 2.5), IDENTITY), (10, 20, 30), plane)
    assert (layout.slice_axis, layout.u_axis, layout.v_axis) == (slice_axis, u_axis, v_axis)
    assert (layout.u_flip, layout.v_flip) == (u_flip, v_flip)
    assert layout.letters == letters


@pytest.mark.parametrize("direction", [IDENTITY, FLIP_X, FLIP_XY])
def test_radiological_convention_for_flipped_axes(direction) -> None:
    """Patient right (lower LPS x) is on the screen's left and anterior at the top, whatever the flips."""
    geometry = Geometry((10, -20, 30), (0.7, 0.8, 2.5), direction)
    shape = (6, 20, 30)
    layouts = all_layouts(geometry, shape)
    a = np.array([3.0, 5.0, 4.0])
    b = np.array([3.0, 12.0, 21.0])
    xa, xb = irc_to_xyz(geometry, a), irc_to_xyz(geometry, b)
    ua, ub = layouts[Plane.AXIAL].to_screen(a), layouts[Plane.AXIAL].to_screen(b)
    assert (ua[0] < ub[0]) == (xa[0] < xb[0])  # more right (smaller x) → more left on screen
    assert (ua[1] < ub[1]) == (xa[1] < xb[1])  # more anterior (smaller y) → higher on screen
    assert layouts[Plane.AXIAL].letters == ("R", "L", "A", "P")
    assert layouts[Plane.CORONAL].letters == ("R", "L", "S", "I")
    # superior (larger z) is higher on the coronal screen
    lo, hi = np.array([1.0, 5, 5]), np.array([4.0, 5, 5])
    assert layouts[Plane.CORONAL].to_screen(hi)[1] < layouts[Plane.CORONAL].to_screen(lo)[1]


def test_permuted_acquisition_shows_the_same_images() -> None:
    """A volume stored with its index axis along x shows the same three planes as the axial original."""
    rng = np.random.default_rng(0)
    a_hu = rng.integers(-1000, 1000, size=(5, 7, 9)).astype(np.int16)
    a_geo = Geometry((0, 0, 0), (0.7, 0.8, 2.5), IDENTITY)
    b_hu = np.ascontiguousarray(a_hu.transpose(2, 0, 1))  # b[x, z, y] = a[z, y, x]
    b_geo = Geometry((0, 0, 0), (0.8, 2.5, 0.7), (0, 0, 1, 1, 0, 0, 0, 1, 0))
    assert_allclose(irc_to_xyz(b_geo, (4, 2, 3)), irc_to_xyz(a_geo, (2, 3, 4)))
    assert patient_axes(b_geo) == ((0, 1), (2, 1), (1, 1))
    for plane in Plane:
        la, lb = plane_layout(a_geo, a_hu.shape, plane), plane_layout(b_geo, b_hu.shape, plane)
        assert la.letters == lb.letters
        assert (la.width_mm, la.height_mm) == pytest.approx((lb.width_mm, lb.height_mm))
        for k in range(la.n_slices):
            assert_array_equal(_screen_image(a_hu, la, k), _screen_image(b_hu, lb, k))


def test_mm_geometry_and_round_trip() -> None:
    layout = plane_layout(Geometry((0, 0, 0), (0.7, 0.8, 2.5), FLIP_X), (10, 20, 30), Plane.CORONAL)
    assert layout.width_mm == pytest.approx(30 * 0.7)
    assert layout.height_mm == pytest.approx(10 * 2.5)  # anisotropic: slices are 2.5 mm tall
    irc = np.array([[3.0, 7.0, 11.0], [0.0, 0.0, 0.0], [9.0, 19.0, 29.0]])
    uv = layout.to_screen(irc)
    for (u, v), p in zip(uv, irc):
        a, b = layout.from_screen(u, v)
        assert (a, b) == pytest.approx((p[layout.u_axis], p[layout.v_axis]))
        assert layout.voxel_at(u, v, int(p[layout.slice_axis])) == tuple(int(x) for x in p)
    assert layout.voxel_at(-1.0, 1.0, 0) is None
    # the image transform puts pixel centres where to_screen puts voxel centres
    m11, m22, dx, dy = layout.image_transform()
    centre = np.array([3.0, 7.0, 11.0])
    u, v = layout.to_screen(centre)
    assert m11 * (centre[layout.u_axis] + 0.5) + dx == pytest.approx(u)
    assert m22 * (centre[layout.v_axis] + 0.5) + dy == pytest.approx(v)


def test_slices_and_display_copy() -> None:
    hu = np.arange(4 * 5 * 6, dtype=np.int16).reshape(4, 5, 6)
    layouts = all_layouts(Geometry(), hu.shape)
    assert_array_equal(slice_2d(hu, layouts[Plane.AXIAL], 2), hu[2])
    assert_array_equal(slice_2d(hu, layouts[Plane.CORONAL], 3), hu[:, 3, :])
    assert_array_equal(slice_2d(hu, layouts[Plane.SAGITTAL], 1), hu[:, :, 1])
    shown = display_slice(hu, layouts[Plane.SAGITTAL], 1)
    assert shown.dtype == np.float32 and shown.flags.c_contiguous
    assert_array_equal(shown, hu[:, :, 1].astype(np.float32))
    assert np.shares_memory(slice_2d(hu, layouts[Plane.AXIAL], 0), hu)  # no copy of the volume


@pytest.mark.parametrize("direction", [(1, 0, 0, 0, 1, 0, 0, 0, 1), (0, 0, 1, 1, 0, 0, 0, 1, 0), (-1, 0, 0, 0, -1, 0, 0, 0, 1)])
def test_slice_blocks_give_the_display_slices(direction) -> None:
    rng = np.random.default_rng(3)
    hu = rng.integers(-1000, 1000, size=(7, 9, 21), dtype=np.int16)
    geometry = Geometry((0, 0, 0), (0.7, 0.8, 2.5), direction)
    for plane, layout in all_layouts(geometry, hu.shape).items():
        blocks = SliceBlocks(hu, layout, block=4)
        assert blocks.blocked == (layout.slice_axis == 2)
        order = list(range(layout.n_slices)) + list(range(layout.n_slices - 1, -1, -3)) + [-5, layout.n_slices + 2]
        for index in order:  # up, down across block edges, and clipped ends
            shown = blocks.slice(index)
            expected = display_slice(hu, layout, int(np.clip(index, 0, layout.n_slices - 1)))
            assert shown.dtype == np.float32 and shown.flags.c_contiguous, plane
            assert_array_equal(shown, expected, err_msg=f"{plane} slice {index}")
    sagittal = SliceBlocks(hu, all_layouts(Geometry(), hu.shape)[Plane.SAGITTAL], block=4)
    sagittal.slice(5)
    assert sagittal._data.shape == (7, 9, 4) and sagittal._start == 4  # a small copy, not the volume


def test_slider_positions_follow_the_scroll_direction() -> None:
    layouts = all_layouts(Geometry(), (10, 20, 30))
    coronal = layouts[Plane.CORONAL]  # index along +y = posterior, "up" is anterior
    assert coronal.slice_sign == -1
    assert coronal.slider_value(0) == 19 and coronal.slice_from_slider(19) == 0
    assert layouts[Plane.AXIAL].slice_sign == 1
