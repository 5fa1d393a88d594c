"""The reading tools' part of the viewer state: ruler measurements, thin slab, cine (no Qt).

:class:`ReadingTools` is mixed into :class:`app.state.ViewerState`, which
provides ``_volume`` and ``_emit``; its setters follow the state's rules
(validate, store, emit only on a change). Events: ``measurements``, ``slab``,
``cine``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from app.measurements import Measurement
from app.slab import SlabSettings

if TYPE_CHECKING:
    from engine.io.volume import CtVolume

#: Field of view, mm, that "go to finding" zooms the views to.
DEFAULT_FINDING_FOV_MM = 60.0
#: Cine speed limits, frames (slices) per second.
CINE_FPS_RANGE = (1.0, 60.0)


class ReadingTools:
    """Measurements, slab and cine state (a mixin of :class:`~app.state.ViewerState`)."""

    _volume: CtVolume | None
    #: Calls the subscribers of ``events``; ViewerState's own method (declared here for the type checker).
    _emit: Callable[..., None]

    def _init_reading_tools(self) -> None:
        self._measurements: tuple[Measurement, ...] = ()
        self._next_measurement_id = 1
        self._selected_measurement: int | None = None
        self._measure_mode = False
        self._slab = SlabSettings()
        self._cine = (False, 10.0, True)  # playing, frames per second, loop
        #: Side of the square field, mm, the views zoom to when a finding is selected.
        self.finding_fov_mm = DEFAULT_FINDING_FOV_MM

    def _reset_reading_tools(self) -> None:
        """A new volume: no measurements, cine stopped (slab and speed are kept)."""
        self._measurements, self._next_measurement_id, self._selected_measurement = (), 1, None
        self._cine = (False,) + self._cine[1:]

    # --- measurements ---------------------------------------------------------------
    @property
    def measurements(self) -> tuple[Measurement, ...]:
        """The ruler measurements on the open series, in the order they were made."""
        return self._measurements

    def add_measurement(self, measurement: Measurement) -> Measurement:
        """Add a measurement (its id is kept; later new ones get higher ids) and select it.

        Raises:
            ValueError: no volume is open, or a measurement with that id exists.
        """
        if self._volume is None:
            raise ValueError("open a series before measuring")
        if any(m.id == measurement.id for m in self._measurements):
            raise ValueError(f"measurement {measurement.id} exists already")
        self._measurements = self._measurements + (measurement,)
        self._next_measurement_id = max(self._next_measurement_id, measurement.id + 1)
        self._selected_measurement = measurement.id
        self._emit("measurements")
        return measurement

    def new_measurement(
        self, axis: int, slice_index: int, start_irc: Sequence[float], end_irc: Sequence[float]
    ) -> Measurement:
        """Measure from ``start_irc`` to ``end_irc`` on one slice and add it (next free id, length from the CT).

        Raises:
            ValueError: no volume is open.
        """
        if self._volume is None:
            raise ValueError("open a series before measuring")
        m = Measurement.between(self._volume.geometry, self._next_measurement_id, axis, slice_index, start_irc, end_irc)
        return self.add_measurement(m)

    def set_measurements(self, measurements: Sequence[Measurement]) -> None:
        """Replace all measurements (e.g. a restored review); none is selected."""
        self._measurements = tuple(measurements)
        self._next_measurement_id = max([m.id for m in self._measurements], default=0) + 1
        self._selected_measurement = None
        self._emit("measurements")

    def remove_measurement(self, measurement_id: int) -> bool:
        """Delete a measurement; returns whether it existed."""
        kept = tuple(m for m in self._measurements if m.id != int(measurement_id))
        if len(kept) == len(self._measurements):
            return False
        self._measurements = kept
        if self._selected_measurement == int(measurement_id):
            self._selected_measurement = None
        self._emit("measurements")
        return True

    @property
    def selected_measurement(self) -> int | None:
        """Id of the selected measurement (Delete removes it), or None."""
        return self._selected_measurement

    def select_measurement(self, measurement_id: int | None) -> None:
        """Select a measurement (None, or an unknown id: none)."""
        new = None if measurement_id is None else int(measurement_id)
        if new is not None and all(m.id != new for m in self._measurements):
            new = None
        if new != self._selected_measurement:
            self._selected_measurement = new
            self._emit("measurements")

    @property
    def measure_mode(self) -> bool:
        """True while the ruler tool is on: a left drag on a view draws a measurement."""
        return self._measure_mode

    def set_measure_mode(self, on: bool) -> None:
        """Turn the ruler tool on or off."""
        if bool(on) != self._measure_mode:
            self._measure_mode = bool(on)
            self._emit("measurements")

    # --- slab and cine ------------------------------------------------------------------
    @property
    def slab(self) -> SlabSettings:
        """The thin-slab projection the views show (off by default)."""
        return self._slab

    def set_slab(self, **changes: object) -> None:
        """Change some of ``enabled``, ``mode``, ``thickness_mm`` (thickness clipped to 5–20 mm)."""
        new = dataclasses.replace(self._slab, **changes)  # type: ignore[arg-type]
        if new != self._slab:
            self._slab = new
            self._emit("slab")

    @property
    def cine_playing(self) -> bool:
        """True while cine plays slices."""
        return self._cine[0]

    @property
    def cine_fps(self) -> float:
        """Cine speed, slices per second."""
        return self._cine[1]

    @property
    def cine_loop(self) -> bool:
        """True: cine starts again at the first slice; False: it stops at the last."""
        return self._cine[2]

    def set_cine(self, playing: bool | None = None, fps: float | None = None, loop: bool | None = None) -> None:
        """Start/stop cine (only with a volume open), change its speed (clipped to 1–60 fps) or looping."""
        old = self._cine
        new = (
            old[0] if playing is None else bool(playing) and self._volume is not None,
            old[1] if fps is None else float(np.clip(float(fps), *CINE_FPS_RANGE)),
            old[2] if loop is None else bool(loop),
        )
        if new != old:
            self._cine = new
            self._emit("cine")
