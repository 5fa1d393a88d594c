"""Display slices of one plane, read a few slices at a time where the plane is strided in memory (no Qt).

A CT is held once, as ``(index, row, col)`` int16. An axial slice is one
contiguous block and a coronal slice a row of contiguous runs, but a sagittal
slice takes one value out of every row: each of its ~170 000 voxels sits in
its own cache line, and gathering it is most of a sagittal slice change.
:class:`SliceBlocks` therefore copies :data:`BLOCK_SLICES` neighbouring
sagittal slices at once (each row contributes one short contiguous run), and
serves the next slice changes from that small copy: scrolling or cine pays
the gather once per block instead of once per slice.
"""

from __future__ import annotations

import numpy as np

from app.planes import PlaneLayout, display_slice

#: Slices copied together along a strided slice axis (8 int16 = one 16-byte run per row).
BLOCK_SLICES = 8


class SliceBlocks:
    """The float32 display slices of one plane of one volume.

    Args:
        volume: ``(index, row, col)`` array (int16 HU); not modified, not copied whole.
        layout: The plane's layout.
        block: Slices read together when the slice axis is the column axis.
    """

    def __init__(self, volume: np.ndarray, layout: PlaneLayout, block: int = BLOCK_SLICES) -> None:
        self.volume = volume
        self.layout = layout
        self.block = max(1, int(block))
        #: Blocks help only where a slice takes one value per row (the column axis).
        self.blocked = layout.slice_axis == 2 and self.block > 1
        self._start = -1
        self._data: np.ndarray | None = None

    def slice(self, index: int) -> np.ndarray:
        """Slice ``index`` like :func:`app.planes.display_slice`: ``(n_v, n_u)`` C-contiguous float32.

        Args:
            index: Slice index along ``layout.slice_axis``, clipped to the volume.
        """
        layout = self.layout
        if not self.blocked:
            return display_slice(self.volume, layout, index)
        index = int(np.clip(index, 0, self.volume.shape[2] - 1))
        start = index - index % self.block
        if start != self._start or self._data is None:
            self._data = np.ascontiguousarray(self.volume[:, :, start : start + self.block])
            self._start = start
        plane = self._data[:, :, index - start]  # (index, row): rows of the volume's index axis
        if [0, 1] != [layout.v_axis, layout.u_axis]:
            plane = plane.T
        return np.ascontiguousarray(plane, dtype=np.float32)
