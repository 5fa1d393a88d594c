"""The viewer's state, without Qt: what is open, where the crosshair is, how it is shown.

Widgets receive one :class:`ViewerState`, subscribe to its events and write back
through its setters; they own no state of their own (napari's model/view
split). Every setter validates, stores, and calls the subscribers of the
events it changed — only when something did change.

Events (subscribers are called with no arguments and read the state):

``volume``      a new CT was opened (crosshair, result, marks reset too)
``crosshair``   the crosshair voxel moved (slice positions)
``window``      window/level changed
``overlay``     segmentation overlay opacity or mode changed
``result``      a detection result was set or cleared
``findings``    the shown findings changed (result, thresholds, marks or notes)
``selection``   the selected finding changed
``cad``         Hide CAD was toggled
``measurements`` ruler measurements, their selection or the ruler tool changed
``slab``        the thin-slab projection (on/off, MIP/MinIP/average, thickness) changed
``cine``        cine playback (playing, frames per second, loop) changed

Measurements, slab and cine live in :class:`app.reading_state.ReadingTools`.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Callable, Sequence

import numpy as np

from app.findings import FindingSet, Mark, Thresholds, carry_by_position, classify
from app.location import LungExtent, lung_extent
from app.reading_state import ReadingTools
from app.windowing import WindowLevel
from engine.detection.result import DetectionResult
from engine.detection.settings import GroupingSettings
from engine.io.volume import CtVolume

EVENTS = ("volume", "crosshair", "window", "overlay", "result", "findings", "selection", "cad",
          "measurements", "slab", "cine")

#: The window a CT opens with: lung (the viewer is for lung nodules).
DEFAULT_WINDOW = WindowLevel(1500.0, -600.0)


class OverlayMode(str, Enum):
    """How the segmentation probability volume is drawn."""

    OFF = "off"
    FINDINGS = "findings"  # the mask's outline around the findings shown, nothing elsewhere
    OUTLINE = "outline"
    PROBABILITY = "probability"
    MASK = "mask"


class ViewerState(ReadingTools):
    """Everything the viewer shows, as plain Python.

    Args:
        thresholds: Initial display thresholds.
        window: Initial window/level.
    """

    def __init__(self, thresholds: Thresholds | None = None, window: WindowLevel | None = None) -> None:
        self._subscribers: dict[str, list[Callable[[], None]]] = {event: [] for event in EVENTS}
        self._volume: CtVolume | None = None
        self._crosshair: tuple[int, int, int] = (0, 0, 0)
        self._window = window or DEFAULT_WINDOW
        self._overlay_opacity = 0.8
        # the outline of what was segmented, around the findings only: informative, never cluttered
        self._overlay_mode = OverlayMode.FINDINGS
        self._thresholds = thresholds or Thresholds()
        self._grouping = GroupingSettings()
        self._result: DetectionResult | None = None
        self._marks: dict[int, Mark] = {}
        self._notes: dict[int, str] = {}
        self._extent: LungExtent | None = None
        self._selected: int | None = None
        self._hide_cad = False
        self._findings = FindingSet()
        self._init_reading_tools()

    # --- events -------------------------------------------------------------
    def subscribe(self, event: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after each change of ``event``.

        Returns:
            A function that unsubscribes it.

        Raises:
            KeyError: ``event`` is not one of :data:`EVENTS`.
        """
        listeners = self._subscribers[event]
        listeners.append(callback)
        return lambda: listeners.remove(callback) if callback in listeners else None

    def _emit(self, *events: str) -> None:
        for event in events:
            for callback in list(self._subscribers[event]):
                callback()

    # --- volume and crosshair -------------------------------------------------
    @property
    def volume(self) -> CtVolume | None:
        """The open CT, or None."""
        return self._volume

    def set_volume(self, volume: CtVolume | None) -> None:
        """Open a CT: the crosshair goes to its centre; result, marks and selection are cleared."""
        self._volume = volume
        self._crosshair = tuple(n // 2 for n in volume.shape) if volume is not None else (0, 0, 0)  # type: ignore[assignment]
        self._result = None
        self._marks = {}
        self._notes = {}
        self._extent = None
        self._selected = None
        self._findings = FindingSet()
        self._reset_reading_tools()
        self._emit("volume", "crosshair", "result", "findings", "selection", "measurements", "cine")

    @property
    def crosshair(self) -> tuple[int, int, int]:
        """The crosshair voxel (index, row, col); each plane shows the slice through it."""
        return self._crosshair

    def set_crosshair(self, irc: Sequence[float]) -> None:
        """Move the crosshair (rounded and clipped to the volume)."""
        if self._volume is None:
            return
        shape = self._volume.shape
        new = tuple(int(np.clip(int(np.floor(float(v) + 0.5)), 0, n - 1)) for v, n in zip(irc, shape))
        if new != self._crosshair:
            self._crosshair = new  # type: ignore[assignment]
            self._emit("crosshair")

    def move_slice(self, axis: int, delta: int) -> None:
        """Move the crosshair ``delta`` voxels along an array axis (clipped)."""
        irc = list(self._crosshair)
        irc[axis] += int(delta)
        self.set_crosshair(irc)

    # --- display --------------------------------------------------------------
    @property
    def window(self) -> WindowLevel:
        """Current window/level in HU."""
        return self._window

    def set_window(self, window: WindowLevel) -> None:
        """Change window/level."""
        if window != self._window:
            self._window = window
            self._emit("window")

    @property
    def overlay_opacity(self) -> float:
        """Opacity of the segmentation overlay, 0..1."""
        return self._overlay_opacity

    def set_overlay_opacity(self, opacity: float) -> None:
        """Change the overlay opacity (clipped to 0..1)."""
        opacity = float(np.clip(opacity, 0.0, 1.0))
        if opacity != self._overlay_opacity:
            self._overlay_opacity = opacity
            self._emit("overlay")

    @property
    def overlay_mode(self) -> OverlayMode:
        """Whether the overlay shows probabilities, the thresholded mask, or nothing."""
        return self._overlay_mode

    def set_overlay_mode(self, mode: OverlayMode | str) -> None:
        """Change the overlay mode."""
        mode = OverlayMode(mode)
        if mode != self._overlay_mode:
            self._overlay_mode = mode
            self._emit("overlay")

    @property
    def hide_cad(self) -> bool:
        """True while all CAD marks (markers and overlay) are hidden for an unbiased read."""
        return self._hide_cad

    def set_hide_cad(self, hide: bool) -> None:
        """Hide or show every CAD mark."""
        if bool(hide) != self._hide_cad:
            self._hide_cad = bool(hide)
            self._emit("cad")

    # --- thresholds and result --------------------------------------------------
    @property
    def thresholds(self) -> Thresholds:
        """Nodule threshold, near-miss band, malignancy threshold."""
        return self._thresholds

    def set_thresholds(self, **changes: float) -> None:
        """Change some of ``nodule``, ``near_miss_band``, ``malignancy``; findings follow at once."""
        new = dataclasses.replace(self._thresholds, **changes)
        if new != self._thresholds:
            self._thresholds = new
            self._refresh_findings()

    @property
    def grouping(self) -> GroupingSettings:
        """How the current (or last) result was grouped: segmentation threshold, erosion."""
        return self._grouping

    @property
    def seg_threshold(self) -> float:
        """Segmentation threshold the current result was grouped at (``grouping.seg_threshold``)."""
        return self._grouping.seg_threshold

    @property
    def result(self) -> DetectionResult | None:
        """The current detection result, or None."""
        return self._result

    def set_result(self, result: DetectionResult | None, *, carry: bool = True) -> None:
        """Show a detection result (None clears it).

        Args:
            result: A result for the open volume, or None.
            carry: Reader marks and notes follow from the current result's
                candidates to the new ones at the same position (a re-grouping
                or a new Detect on the same series); False forgets them.

        Raises:
            ValueError: the result's shape differs from the open volume's.
        """
        if result is not None:
            if self._volume is None or tuple(result.shape) != tuple(self._volume.shape):
                have = None if self._volume is None else self._volume.shape
                raise ValueError(f"detection result of shape {tuple(result.shape)} does not fit the open volume {have}")
        old = self._result
        if carry and old is not None and result is not None:
            self._marks = carry_by_position(old.candidates, result.candidates, self._marks)
            self._notes = carry_by_position(old.candidates, result.candidates, self._notes)
        else:
            self._marks, self._notes = {}, {}
        self._result = result
        if result is not None:
            self._grouping = result.grouping
            self._extent = lung_extent(self._volume, result)  # type: ignore[arg-type]
        self._emit("result")
        self._refresh_findings()

    @property
    def findings(self) -> FindingSet:
        """The findings shown at the current thresholds (highest p_nodule first)."""
        return self._findings

    @property
    def lung_extent(self) -> LungExtent | None:
        """The lungs' extent the findings' locations refer to (None before a result)."""
        return self._extent

    def _refresh_findings(self) -> None:
        candidates = self._result.candidates if self._result is not None else ()
        extent = self._extent
        locate = None if extent is None else (lambda c: extent.describe(c.center_xyz))
        self._findings = classify(candidates, self._thresholds, self._marks, notes=self._notes, locate=locate)
        self._emit("findings")
        if self._selected is not None and self._findings.by_id(self._selected) is None:
            self._selected = None
            self._emit("selection")

    # --- selection and marks ------------------------------------------------------
    @property
    def selected_id(self) -> int | None:
        """Candidate id of the selected finding, or None."""
        return self._selected

    def select(self, candidate_id: int | None, *, jump: bool = True) -> None:
        """Select a shown finding; with ``jump`` the crosshair moves to its centre."""
        finding = None if candidate_id is None else self._findings.by_id(int(candidate_id))
        new = None if finding is None else finding.id
        if new != self._selected:
            self._selected = new
            self._emit("selection")
        if finding is not None and jump:
            self.set_crosshair(finding.candidate.center_irc)

    def step_selection(self, step: int, order: Sequence[int] | None = None) -> int | None:
        """Select the next (``step`` > 0) or previous finding and jump to it.

        Args:
            step: +1 for next, -1 for previous (wraps around).
            order: Candidate ids in the order the user sees them (e.g. the
                table's sort order); default: highest p_nodule first.

        Returns:
            The newly selected id, or None when no finding is shown.
        """
        ids = list(order) if order is not None else self._findings.ids()
        if not ids:
            return None
        if self._selected in ids:
            k = (ids.index(self._selected) + step) % len(ids)
        else:
            k = 0 if step > 0 else len(ids) - 1
        self.select(ids[k])
        return ids[k]

    @property
    def marks(self) -> dict[int, Mark]:
        """Reader verdicts by candidate id (a copy)."""
        return dict(self._marks)

    @property
    def notes(self) -> dict[int, str]:
        """Reader notes by candidate id (a copy)."""
        return dict(self._notes)

    def set_note(self, candidate_id: int, text: str) -> None:
        """Write the reader's note on a finding (blank text removes it)."""
        candidate_id, text = int(candidate_id), str(text).strip()
        if self._notes.get(candidate_id, "") == text:
            return
        if text:
            self._notes[candidate_id] = text
        else:
            self._notes.pop(candidate_id, None)
        self._refresh_findings()

    def restore_review(self, marks: dict[int, Mark], notes: dict[int, str]) -> None:
        """Add saved marks and notes (by candidate id of the current result) without replacing newer ones."""
        known = {int(c.id) for c in self._result.candidates} if self._result is not None else set()
        new_marks = {**{int(k): Mark(v) for k, v in marks.items() if int(k) in known}, **self._marks}
        new_notes = {**{int(k): str(v) for k, v in notes.items() if int(k) in known and str(v).strip()}, **self._notes}
        if new_marks != self._marks or new_notes != self._notes:
            self._marks, self._notes = new_marks, new_notes
            self._refresh_findings()

    def set_mark(self, candidate_id: int, mark: Mark | str | None) -> None:
        """Accept or reject a finding (None clears the mark)."""
        candidate_id = int(candidate_id)
        if mark is None:
            changed = self._marks.pop(candidate_id, None) is not None
        else:
            mark = Mark(mark)
            changed = self._marks.get(candidate_id) != mark
            self._marks[candidate_id] = mark
        if changed:
            self._refresh_findings()
