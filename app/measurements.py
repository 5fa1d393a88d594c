"""Ruler measurements drawn by the reader: a frozen record and its length in mm (no Qt).

A measurement is a straight line on one slice of one plane, stored in voxel
coordinates (index, row, col) so it stays put whatever the zoom, and its
length is computed from the CT's voxel spacing (anisotropic voxels included).
Measurements are plain data (:meth:`Measurement.to_dict` /
:meth:`Measurement.from_dict`) so the review file can keep them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from engine.geometry import Geometry, irc_to_xyz


def ruler_length_mm(geometry: Geometry, start_irc: Sequence[float], end_irc: Sequence[float]) -> float:
    """Distance in mm between two continuous voxel positions.

    Args:
        geometry: The CT's geometry (spacing and direction).
        start_irc, end_irc: Positions (index, row, col); integers are voxel centres.

    Returns:
        Euclidean distance in patient mm (the direction matrix is a rotation,
        so this equals the spacing-scaled voxel distance).
    """
    a = irc_to_xyz(geometry, np.asarray(start_irc, dtype=np.float64))
    b = irc_to_xyz(geometry, np.asarray(end_irc, dtype=np.float64))
    return float(np.linalg.norm(b - a))


@dataclass(frozen=True)
class Measurement:
    """One ruler line.

    Args:
        id: Number within the open series (1, 2, ...), never reused while it is open.
        axis: Array axis (0 index, 1 row, 2 col) the slice it was drawn on cuts across.
        slice_index: That slice's index along ``axis``.
        start_irc, end_irc: Its ends (index, row, col), continuous voxel coordinates.
        length_mm: Its length in mm (:func:`ruler_length_mm`).
    """

    id: int
    axis: int
    slice_index: int
    start_irc: tuple[float, float, float]
    end_irc: tuple[float, float, float]
    length_mm: float

    def __post_init__(self) -> None:
        if self.axis not in (0, 1, 2):
            raise ValueError(f"a measurement's axis must be 0, 1 or 2, got {self.axis}")
        object.__setattr__(self, "start_irc", tuple(float(v) for v in self.start_irc))
        object.__setattr__(self, "end_irc", tuple(float(v) for v in self.end_irc))
        if len(self.start_irc) != 3 or len(self.end_irc) != 3:
            raise ValueError("a measurement's ends need three coordinates (index, row, col)")

    @classmethod
    def between(
        cls, geometry: Geometry, id: int, axis: int, slice_index: int,
        start_irc: Sequence[float], end_irc: Sequence[float],
    ) -> Measurement:
        """A measurement whose length is computed from ``geometry``."""
        return cls(int(id), int(axis), int(slice_index), tuple(start_irc), tuple(end_irc),  # type: ignore[arg-type]
                   ruler_length_mm(geometry, start_irc, end_irc))

    def label(self) -> str:
        """What the view writes next to the line (``"12.3 mm"``)."""
        return f"{self.length_mm:.1f} mm"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able data."""
        return {
            "id": self.id,
            "axis": self.axis,
            "slice_index": self.slice_index,
            "start_irc": list(self.start_irc),
            "end_irc": list(self.end_irc),
            "length_mm": self.length_mm,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Measurement:
        """The measurement written by :meth:`to_dict`.

        Raises:
            ValueError: a field is missing or of the wrong kind.
        """
        try:
            return cls(int(data["id"]), int(data["axis"]), int(data["slice_index"]),
                       tuple(data["start_irc"]), tuple(data["end_irc"]), float(data["length_mm"]))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a measurement: {exc}") from exc
