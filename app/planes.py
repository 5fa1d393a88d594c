"""The three viewing planes of a CT volume: which array axes they show, how, and where.

Pure functions, no Qt. Each plane is laid out in *screen millimetres*:
``u`` grows to the right of the screen and ``v`` grows downwards, both in mm,
so a view that draws in (u, v) has the right aspect ratio for anisotropic
voxels. The array is not resampled: a plane's 2D slice is shown with a scale
(and, where needed, a flip) transform.

Radiological convention, whatever the direction matrix:

* axial: patient right on screen left, anterior at the top;
* coronal: patient right on screen left, superior at the top;
* sagittal: anterior on screen left, superior at the top.

Each image axis is matched to the patient axis it runs along most
(:func:`patient_axes`); an oblique volume is shown in its own voxel grid
oriented by those dominant axes, as ITK-SNAP and Slicer do for display.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np

from engine.geometry import Geometry, axis_letters


class Plane(str, Enum):
    """A viewing plane, named as radiologists do."""

    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


#: For each plane: the patient axis (0 = x R→L, 1 = y A→P, 2 = z I→S) it slices,
#: the patient axis and direction shown along screen u (rightwards), and along
#: screen v (downwards), and the direction "up" a slice scroll moves.
_PLANE_AXES: dict[Plane, tuple[int, tuple[int, int], tuple[int, int], int]] = {
    Plane.AXIAL: (2, (0, +1), (1, +1), +1),  # u → patient left, v → posterior; scroll up → superior
    Plane.CORONAL: (1, (0, +1), (2, -1), -1),  # u → left, v → inferior; scroll up → anterior
    Plane.SAGITTAL: (0, (1, +1), (2, -1), +1),  # u → posterior, v → inferior; scroll up → left
}


def patient_axes(geometry: Geometry) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """The patient axis each image axis runs along, and in which sense.

    Args:
        geometry: The volume's geometry.

    Returns:
        For the (index, row, col) axes in that order, ``(k, sign)``: ``k`` is the
        dominant patient axis (0 = x, 1 = y, 2 = z, LPS) and ``sign`` is ``+1``
        when increasing the array index moves towards +k (L, P or S). When two
        image axes share a dominant patient axis (a very oblique volume), the
        identity mapping (index→z, row→y, col→x) is used.
    """
    m = geometry.direction_matrix
    result = []
    for image_axis in (2, 1, 0):  # irc order: index is image axis 2, row 1, col 0
        column = m[:, image_axis]
        k = int(np.argmax(np.abs(column)))
        result.append((k, 1 if column[k] > 0 else -1))
    if sorted(k for k, _ in result) != [0, 1, 2]:
        return ((2, 1), (1, 1), (0, 1))
    return tuple(result)  # type: ignore[return-value]


@dataclass(frozen=True)
class PlaneLayout:
    """How one plane of a volume is laid out on screen.

    Args:
        plane: Which plane.
        slice_axis: Array axis (0 index, 1 row, 2 col) that the plane cuts across.
        u_axis: Array axis shown along screen u (rightwards).
        v_axis: Array axis shown along screen v (downwards).
        u_flip: True when increasing ``u_axis`` index moves to the screen left.
        v_flip: True when increasing ``v_axis`` index moves up the screen.
        slice_sign: +1 when increasing the slice index moves "up" (towards
            superior, anterior or left for axial, coronal, sagittal), else -1.
        n_slices, n_u, n_v: Voxel counts along the slice, u and v axes.
        spacing_slice, spacing_u, spacing_v: Voxel sizes in mm along them.
        letters: Patient-direction letters at the screen's (left, right, top,
            bottom) edges, derived from the direction matrix.
    """

    plane: Plane
    slice_axis: int
    u_axis: int
    v_axis: int
    u_flip: bool
    v_flip: bool
    slice_sign: int
    n_slices: int
    n_u: int
    n_v: int
    spacing_slice: float
    spacing_u: float
    spacing_v: float
    letters: tuple[str, str, str, str]

    @property
    def width_mm(self) -> float:
        """Width of the plane's image on screen, in mm."""
        return self.n_u * self.spacing_u

    @property
    def height_mm(self) -> float:
        """Height of the plane's image on screen, in mm."""
        return self.n_v * self.spacing_v

    def image_transform(self) -> tuple[float, float, float, float]:
        """The affine map from image pixels to screen mm, as ``(m11, m22, dx, dy)``.

        Image pixel ``(x, y)`` (column, row of the 2D slice from :func:`slice_2d`,
        pixel edges at integers) lands at ``u = m11 * x + dx``, ``v = m22 * y + dy``.
        """
        m11 = -self.spacing_u if self.u_flip else self.spacing_u
        m22 = -self.spacing_v if self.v_flip else self.spacing_v
        dx = self.width_mm if self.u_flip else 0.0
        dy = self.height_mm if self.v_flip else 0.0
        return m11, m22, dx, dy

    def to_screen(self, irc: np.ndarray | tuple[float, float, float]) -> np.ndarray:
        """Continuous voxel positions to screen mm.

        Args:
            irc: ``(..., 3)`` positions in (index, row, col); integers are voxel centres.

        Returns:
            ``(..., 2)`` float64 ``(u, v)`` in mm.
        """
        irc = np.asarray(irc, dtype=np.float64)
        a = irc[..., self.u_axis]
        b = irc[..., self.v_axis]
        u = (self.n_u - 0.5 - a) * self.spacing_u if self.u_flip else (a + 0.5) * self.spacing_u
        v = (self.n_v - 0.5 - b) * self.spacing_v if self.v_flip else (b + 0.5) * self.spacing_v
        return np.stack([u, v], axis=-1)

    def from_screen(self, u: float, v: float) -> tuple[float, float]:
        """Screen mm to continuous (u_axis, v_axis) array coordinates (voxel centres at integers)."""
        a = self.n_u - 0.5 - u / self.spacing_u if self.u_flip else u / self.spacing_u - 0.5
        b = self.n_v - 0.5 - v / self.spacing_v if self.v_flip else v / self.spacing_v - 0.5
        return float(a), float(b)

    def voxel_at(self, u: float, v: float, slice_index: int) -> tuple[int, int, int] | None:
        """The voxel (index, row, col) under screen point ``(u, v)`` on a slice, or None outside."""
        a, b = self.from_screen(u, v)
        ia, ib = int(np.floor(a + 0.5)), int(np.floor(b + 0.5))
        if not (0 <= ia < self.n_u and 0 <= ib < self.n_v and 0 <= slice_index < self.n_slices):
            return None
        irc = [0, 0, 0]
        irc[self.slice_axis] = int(slice_index)
        irc[self.u_axis] = ia
        irc[self.v_axis] = ib
        return irc[0], irc[1], irc[2]

    def slider_value(self, slice_index: int) -> int:
        """Slider position (0 at the bottom/"down" end) of a slice index."""
        return slice_index if self.slice_sign > 0 else self.n_slices - 1 - slice_index

    def slice_from_slider(self, value: int) -> int:
        """Slice index of a slider position (inverse of :meth:`slider_value`)."""
        return value if self.slice_sign > 0 else self.n_slices - 1 - value


def plane_layout(geometry: Geometry, shape: tuple[int, int, int], plane: Plane) -> PlaneLayout:
    """Lay out one plane of a volume in the radiological convention.

    Args:
        geometry: The volume's geometry (direction decides flips and letters).
        shape: Array shape (index, row, col).
        plane: Which plane.

    Returns:
        The plane's layout.
    """
    plane = Plane(plane)
    axes = patient_axes(geometry)
    by_patient = {k: (image_axis, sign) for image_axis, (k, sign) in enumerate(axes)}
    slice_k, (u_k, u_dir), (v_k, v_dir), up_dir = _PLANE_AXES[plane]
    slice_axis, slice_s = by_patient[slice_k]
    u_axis, u_s = by_patient[u_k]
    v_axis, v_s = by_patient[v_k]
    u_flip = u_s * u_dir < 0
    v_flip = v_s * v_dir < 0
    letters_irc = axis_letters(geometry)
    u_low, u_high = letters_irc[u_axis]
    v_low, v_high = letters_irc[v_axis]
    left, right = (u_high, u_low) if u_flip else (u_low, u_high)
    top, bottom = (v_high, v_low) if v_flip else (v_low, v_high)
    spacing = geometry.spacing_irc
    return PlaneLayout(
        plane=plane,
        slice_axis=slice_axis,
        u_axis=u_axis,
        v_axis=v_axis,
        u_flip=bool(u_flip),
        v_flip=bool(v_flip),
        slice_sign=1 if slice_s * up_dir > 0 else -1,
        n_slices=int(shape[slice_axis]),
        n_u=int(shape[u_axis]),
        n_v=int(shape[v_axis]),
        spacing_slice=float(spacing[slice_axis]),
        spacing_u=float(spacing[u_axis]),
        spacing_v=float(spacing[v_axis]),
        letters=(left, right, top, bottom),
    )


def slice_2d(volume: np.ndarray, layout: PlaneLayout, index: int) -> np.ndarray:
    """The plane's 2D slice at ``index``, rows along v and columns along u (a view when possible).

    Args:
        volume: ``(index, row, col)`` array of any dtype (HU, probabilities).
        layout: The plane's layout.
        index: Slice index along ``layout.slice_axis``, clipped to the volume.

    Returns:
        ``(n_v, n_u)`` array; not flipped (flips are the display transform's job).
    """
    index = int(np.clip(index, 0, volume.shape[layout.slice_axis] - 1))
    selector: list[slice | int] = [slice(None)] * 3
    selector[layout.slice_axis] = index
    plane = volume[tuple(selector)]
    remaining = [a for a in (0, 1, 2) if a != layout.slice_axis]
    if remaining != [layout.v_axis, layout.u_axis]:
        plane = plane.T
    return plane


def display_slice(hu: np.ndarray, layout: PlaneLayout, index: int) -> np.ndarray:
    """A C-contiguous ``float32`` copy of one slice for display (int16 has no fast path).

    Only the shown slice is converted, so the volume stays in memory once, as int16.

    Args:
        hu: ``(index, row, col)`` int16 HU volume.
        layout: The plane's layout.
        index: Slice index.

    Returns:
        ``(n_v, n_u)`` float32 HU, C-contiguous.
    """
    return np.ascontiguousarray(slice_2d(hu, layout, index), dtype=np.float32)


def all_layouts(geometry: Geometry, shape: tuple[int, int, int]) -> dict[Plane, PlaneLayout]:
    """Layouts of the three planes of a volume, keyed by plane."""
    return {plane: plane_layout(geometry, shape, plane) for plane in Plane}
