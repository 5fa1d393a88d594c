"""What lies under the cursor: HU value, voxel index and patient position (LPS mm)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.io.volume import CtVolume
from engine.geometry import irc_to_xyz


@dataclass(frozen=True)
class Readout:
    """The value of one voxel and where it is.

    Args:
        irc: Voxel index (index, row, col), 0-based.
        hu: Its value in HU.
        xyz: Its centre in patient LPS mm (x, y, z).
    """

    irc: tuple[int, int, int]
    hu: int
    xyz: tuple[float, float, float]

    def text(self) -> str:
        """One status-bar line, e.g. ``HU -812   voxel (i,r,c) 40, 211, 305   LPS mm x -12.3 y 45.0 z -101.5``."""
        i, r, c = self.irc
        return f"HU {self.hu:>5d}    voxel (i,r,c) {i}, {r}, {c}    {format_xyz(self.xyz)}"


def format_xyz(xyz: tuple[float, float, float] | np.ndarray) -> str:
    """``LPS mm x … y … z …`` with one decimal."""
    x, y, z = (float(v) for v in xyz)
    return f"LPS mm x {x:.1f}  y {y:.1f}  z {z:.1f}"


def readout_at(ct: CtVolume, irc: tuple[int, int, int]) -> Readout | None:
    """The readout of one voxel, or None when ``irc`` lies outside the volume.

    Args:
        ct: The volume.
        irc: Voxel index (index, row, col).
    """
    if not all(0 <= int(v) < n for v, n in zip(irc, ct.shape)):
        return None
    i, r, c = (int(v) for v in irc)
    xyz = irc_to_xyz(ct.geometry, (i, r, c))
    return Readout(irc=(i, r, c), hu=int(ct.hu[i, r, c]), xyz=(float(xyz[0]), float(xyz[1]), float(xyz[2])))
