"""Patient geometry of a CT volume and the conversions between voxel and world.

Conventions (SPEC §1.1):

* ``irc`` = (index, row, col) = (z, y, x) voxel coordinates, the axis order of
  the HU array.
* ``xyz`` = patient coordinates in LPS millimetres (x grows to the patient's
  Left, y to Posterior, z to Superior), as in DICOM, ITK and the LUNA16 CSVs.
* ``direction`` is the 3×3 matrix whose *columns* are the image axes (col, row,
  index) expressed in patient space, row-major as SimpleITK's ``GetDirection``.

``xyz = direction @ (irc[::-1] * spacing_xyz) + origin_xyz`` and its exact
inverse. All functions accept one point ``(3,)`` or many ``(N, 3)`` (any leading
shape) and are vectorised.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

Vec3 = tuple[float, float, float]


@dataclass(frozen=True)
class Geometry:
    """Where a volume's voxels lie in patient space.

    Args:
        origin_xyz: World position (LPS mm) of the centre of voxel irc = (0, 0, 0).
        spacing_xyz: Voxel size in mm along the col, row and index axes (x, y, z order).
        direction: 9 floats, the row-major 3×3 direction matrix; column j is the
            patient-space unit vector of image axis j (j = 0 col, 1 row, 2 index).
    """

    origin_xyz: Vec3 = (0.0, 0.0, 0.0)
    spacing_xyz: Vec3 = (1.0, 1.0, 1.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "origin_xyz", tuple(float(v) for v in self.origin_xyz))
        object.__setattr__(self, "spacing_xyz", tuple(float(v) for v in self.spacing_xyz))
        direction = tuple(float(v) for v in np.asarray(self.direction, dtype=np.float64).ravel())
        object.__setattr__(self, "direction", direction)
        if len(self.origin_xyz) != 3 or len(self.spacing_xyz) != 3 or len(direction) != 9:
            raise ValueError("Geometry needs a 3-vector origin and spacing and a 3x3 direction")
        if min(self.spacing_xyz) <= 0:
            raise ValueError(f"voxel spacing must be positive, got {self.spacing_xyz}")
        if abs(np.linalg.det(self.direction_matrix)) < 1e-6:
            raise ValueError("direction matrix is singular")

    @property
    def direction_matrix(self) -> np.ndarray:
        """The direction as a float64 ``(3, 3)`` array (columns = image axes)."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def spacing_irc(self) -> tuple[float, float, float]:
        """Voxel size in mm in (index, row, col) order."""
        return self.spacing_xyz[::-1]  # type: ignore[return-value]

    @property
    def is_axis_aligned(self) -> bool:
        """True when every image axis runs along one patient axis (flips allowed)."""
        m = np.abs(self.direction_matrix)
        return bool(np.all((m < 1e-6) | (np.abs(m - 1) < 1e-6)))


def irc_to_xyz(geometry: Geometry, irc: Sequence[float] | np.ndarray) -> np.ndarray:
    """Voxel (index,row,col) coordinates to patient LPS mm.

    Args:
        geometry: The volume's geometry.
        irc: ``(..., 3)`` voxel coordinates in (index, row, col) order; fractional
            values are continuous positions (voxel centres are integers).

    Returns:
        ``(..., 3)`` float64 patient coordinates in (x, y, z) LPS mm.
    """
    irc = np.asarray(irc, dtype=np.float64)
    cri = irc[..., ::-1] * np.asarray(geometry.spacing_xyz)
    return cri @ geometry.direction_matrix.T + np.asarray(geometry.origin_xyz)


def xyz_to_irc_continuous(geometry: Geometry, xyz: Sequence[float] | np.ndarray) -> np.ndarray:
    """Patient LPS mm to continuous voxel coordinates (exact inverse of ``irc_to_xyz``).

    Args:
        geometry: The volume's geometry.
        xyz: ``(..., 3)`` patient coordinates (x, y, z) in LPS mm.

    Returns:
        ``(..., 3)`` float64 voxel coordinates in (index, row, col) order.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    inverse = np.linalg.inv(geometry.direction_matrix)
    cri = (xyz - np.asarray(geometry.origin_xyz)) @ inverse.T / np.asarray(geometry.spacing_xyz)
    return cri[..., ::-1]


def xyz_to_irc(geometry: Geometry, xyz: Sequence[float] | np.ndarray) -> np.ndarray:
    """Patient LPS mm to the nearest voxel (index,row,col), as ITK rounds.

    Halves round up (ITK's ``RoundHalfIntegerUp``), so the result equals
    SimpleITK's ``TransformPhysicalPointToIndex`` (reversed to irc order).

    Args:
        geometry: The volume's geometry.
        xyz: ``(..., 3)`` patient coordinates in LPS mm.

    Returns:
        ``(..., 3)`` int64 voxel indices in (index, row, col) order; they may lie
        outside the volume.
    """
    return np.floor(xyz_to_irc_continuous(geometry, xyz) + 0.5).astype(np.int64)


_AXIS_LETTERS = (("R", "L"), ("A", "P"), ("I", "S"))


def axis_letters(geometry: Geometry) -> tuple[tuple[str, str], tuple[str, str], tuple[str, str]]:
    """Patient-direction letters at the low and high end of each image axis.

    Args:
        geometry: The volume's geometry.

    Returns:
        For the (index, row, col) axes in that order, a pair ``(low_end, high_end)``
        of letters among R/L, A/P, I/S: the side of the patient that the first
        and the last voxel along that axis lie towards. For an oblique axis the
        dominant patient axis is used.
    """
    m = geometry.direction_matrix
    pairs = []
    for axis in (2, 1, 0):  # irc order: index is image axis 2, row 1, col 0
        column = m[:, axis]
        k = int(np.argmax(np.abs(column)))
        neg, pos = _AXIS_LETTERS[k]
        pairs.append((neg, pos) if column[k] > 0 else (pos, neg))
    return tuple(pairs)  # type: ignore[return-value]
