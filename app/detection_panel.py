"""The CAD panel: Detect with progress and Cancel, the live thresholds, and the overlay controls.

Threshold sliders write straight to the state, so markers, table and counts
follow while the slider moves; nothing is re-run. The segmentation slider is
the exception: it asks for a re-group (debounced), which runs in the
background from the stored probabilities.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from app.controllers import DetectController
from app.state import OverlayMode, ViewerState
from engine.detection.result import DetectionResult
from engine.detection.settings import EROSION_NAMES, EROSIONS, METHOD_NAMES, METHODS, GroupingSettings

#: Shown next to results from the bundled demo models.
DEMO_DISCLAIMER = "Demo model trained on synthetic data — not for clinical use."
#: Shown next to results from any other models.
DISCLAIMER = "Research software — not for clinical use."
#: Delay before a moved segmentation slider triggers a re-group, in ms.
REGROUP_DELAY_MS = 400


class _ProbabilitySlider(QWidget):
    """A horizontal slider over [lo, hi] in hundredths, with its value shown."""

    def __init__(self, lo: float, hi: float, on_change: Callable[[float], None]) -> None:
        super().__init__()
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(int(round(lo * 100)), int(round(hi * 100)))
        self.slider.setPageStep(5)
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(34)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.slider, 1)
        row.addWidget(self.value_label)
        self._on_change = on_change
        self.slider.valueChanged.connect(self._changed)
        self.value_label.setText(f"{self.slider.value() / 100:.2f}")

    def _changed(self, value: int) -> None:
        self.value_label.setText(f"{value / 100:.2f}")
        self._on_change(value / 100)

    def value(self) -> float:
        """The slider's value in [lo, hi]."""
        return self.slider.value() / 100

    def set_value(self, value: float) -> None:
        """Move the slider without calling back."""
        self.slider.blockSignals(True)
        self.slider.setValue(int(round(value * 100)))
        self.slider.blockSignals(False)
        self.value_label.setText(f"{self.slider.value() / 100:.2f}")


class DetectionPanel(QWidget):
    """Detect/Cancel, progress, thresholds and overlay controls, bound to the state.

    Args:
        state: The viewer state.
        controller: Runs Detect and re-grouping.

    Signals:
        detect_requested(): the Detect button was pressed.
    """

    detect_requested = Signal()

    def __init__(self, state: ViewerState, controller: DetectController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.controller = controller
        self._stage_text = ""
        self._build()
        self._clock = QTimer(self, interval=100)
        self._clock.timeout.connect(self._tick)
        self._regroup_timer = QTimer(self, singleShot=True, interval=REGROUP_DELAY_MS)
        self._regroup_timer.timeout.connect(self._request_regroup)
        controller.started.connect(self._on_started)
        controller.progress.connect(self._on_progress)
        controller.done.connect(self._on_done)
        controller.failed.connect(self._on_failed)
        controller.cancelled.connect(self._on_cancelled)
        controller.busy_changed.connect(self._on_busy)
        self._unsubscribe = [
            state.subscribe("volume", self._on_volume),
            state.subscribe("result", self._on_result),
            state.subscribe("findings", self._sync_thresholds),
            state.subscribe("overlay", self._sync_overlay),
            state.subscribe("cad", self._sync_overlay),
        ]
        self.destroyed.connect(lambda *_: [off() for off in self._unsubscribe])
        self._sync_thresholds()
        self._sync_overlay()
        self._on_volume()

    def _build(self) -> None:
        self.detect_button = QPushButton("Detect")
        self.detect_button.setObjectName("detectButton")
        self.detect_button.setToolTip("Find nodule candidates in the open series (Ctrl+D)")
        self.detect_button.clicked.connect(self.detect_requested)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.controller.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setFixedHeight(8)
        self.stage = QLabel("Open a series, then Detect.")
        self.stage.setWordWrap(True)
        self.disclaimer = QLabel("")
        self.disclaimer.setObjectName("disclaimer")
        self.disclaimer.setWordWrap(True)

        buttons = QHBoxLayout()
        buttons.addWidget(self.detect_button, 1)
        buttons.addWidget(self.cancel_button)

        thresholds = QGroupBox("Thresholds (live)")
        form = QFormLayout(thresholds)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        self.nodule_slider = _ProbabilitySlider(0.0, 1.0, lambda v: self.state.set_thresholds(nodule=v))
        self.nodule_slider.setToolTip("Candidates with p(nodule) at or above this are nodules")
        self.band_slider = _ProbabilitySlider(0.0, 0.5, lambda v: self.state.set_thresholds(near_miss_band=v))
        self.band_slider.setToolTip("Candidates this far below the nodule threshold show as near misses (dashed)")
        self.malignancy_slider = _ProbabilitySlider(0.0, 1.0, lambda v: self.state.set_thresholds(malignancy=v))
        self.malignancy_slider.setToolTip("Findings with p(malignant) at or above this are drawn red")
        self.seg_slider = _ProbabilitySlider(0.05, 0.95, self._seg_moved)
        self.seg_slider.setToolTip(
            "Segmentation threshold: lower finds more (and fainter) candidates. "
            "Re-groups the stored probabilities; the network is not run again."
        )
        form.addRow("Nodule p ≥", self.nodule_slider)
        form.addRow("Near-miss band", self.band_slider)
        form.addRow("Malignant p ≥", self.malignancy_slider)
        form.addRow("Segmentation", self.seg_slider)
        self.erosion = QComboBox()
        for value in EROSIONS:
            self.erosion.addItem(EROSION_NAMES[value], value)
        self.erosion.setToolTip(
            "Erosion before the flagged voxels are grouped into candidates. The book's 3D cross drops "
            "specks but also small nodules only two slices thick; in-plane keeps those (more candidates). "
            "Re-groups the stored probabilities."
        )
        self.erosion.activated.connect(lambda _index: self._request_regroup())
        form.addRow("Erosion", self.erosion)
        self.method = QComboBox()
        for value in METHODS:
            self.method.addItem(METHOD_NAMES[value], value)
        self.method.setToolTip(
            "How flagged voxels become candidates. The book's components put one candidate at the centre of "
            "each blob, so a nodule touching a vessel or the pleura can be lost; peaks splits such blobs, "
            "centres each candidate on its core, keeps thin nodules (no erosion) and merges fragments of one "
            "lesion. Re-groups the stored probabilities."
        )
        self.method.activated.connect(lambda _index: self._request_regroup())
        form.addRow("Candidates", self.method)

        display = QGroupBox("Display")
        dform = QFormLayout(display)
        self.overlay_mode = QComboBox()
        for mode, text in (
            (OverlayMode.FINDINGS, "Outline of findings"),
            (OverlayMode.OUTLINE, "Outline of all segmentation"),
            (OverlayMode.MASK, "Segmentation mask"),
            (OverlayMode.PROBABILITY, "Segmentation probability"),
            (OverlayMode.OFF, "Off"),
        ):
            self.overlay_mode.addItem(text, mode.value)
        self.overlay_mode.currentIndexChanged.connect(
            lambda _i: self.state.set_overlay_mode(self.overlay_mode.currentData())
        )
        self.opacity = QSlider(Qt.Orientation.Horizontal)
        self.opacity.setRange(0, 100)
        self.opacity.valueChanged.connect(lambda v: self.state.set_overlay_opacity(v / 100))
        self.hide_cad = QCheckBox("Hide CAD marks (H)")
        self.hide_cad.setToolTip("Hide markers and overlay for a first read without CAD")
        self.hide_cad.toggled.connect(self.state.set_hide_cad)
        dform.addRow("Overlay", self.overlay_mode)
        dform.addRow("Opacity", self.opacity)
        dform.addRow(self.hide_cad)

        box = QVBoxLayout(self)
        box.addLayout(buttons)
        box.addWidget(self.progress)
        box.addWidget(self.stage)
        box.addWidget(self.disclaimer)
        box.addWidget(thresholds)
        box.addWidget(display)
        box.addStretch(1)

    # --- controller → panel ---------------------------------------------------------
    def _on_started(self, kind: str) -> None:
        self.progress.setValue(0)
        self.stage.setText("Re-grouping…" if kind == "regroup" else "Starting…")
        self._clock.start()

    def _on_progress(self, fraction: float, stage: str) -> None:
        self.progress.setValue(int(max(0.0, min(1.0, fraction)) * 1000))
        self._stage_text = stage
        self._tick()

    def _tick(self) -> None:
        self.stage.setText(progress_text(self.controller.kind, self._stage_text, self.progress.value() / 1000,
                                         self.controller.elapsed(), self.controller.provider.device))

    def _on_done(self, result: DetectionResult) -> None:
        self.progress.setValue(1000)
        timings = dict(result.timings)
        total = float(timings.pop("total", self.controller.elapsed()))
        parts = ", ".join(f"{k.replace('_', ' ')} {float(v):.1f} s" for k, v in timings.items())
        verb = "Re-grouped" if self.controller.last_kind == "regroup" else "Detected"
        lines = [f"{verb} in {total:.1f} s on {result.device}"]  # one short line; the stages are in the tooltip
        self.stage.setToolTip(f"Seconds per stage: {parts}" if parts else "")
        lines.append(f"Grouping: {result.grouping.describe()}")
        lines += [str(m) for m in result.messages]
        self.stage.setText("\n".join(lines))

    def _on_failed(self, message: str) -> None:
        self.progress.setValue(0)
        self.stage.setText("Detection failed — see the message. The previous result is kept.")
        self._show_grouping()

    def _on_cancelled(self) -> None:
        self.progress.setValue(0)
        self.stage.setText("Cancelled — the previous result is kept.")
        self._show_grouping()

    def _on_busy(self, busy: bool) -> None:
        if not busy:
            self._clock.stop()
        self._update_enabled()

    def _update_enabled(self) -> None:
        busy = self.controller.busy
        has_volume = self.state.volume is not None
        self.detect_button.setEnabled(has_volume and not busy)
        self.cancel_button.setEnabled(busy)
        self.seg_slider.setEnabled(self.state.result is not None and not busy)
        self.erosion.setEnabled(self.state.result is not None and not busy)
        self.method.setEnabled(self.state.result is not None and not busy)

    def _on_volume(self) -> None:
        self.progress.setValue(0)
        if self.state.volume is None:
            self.stage.setText("Open a series, then Detect.")
        else:
            self.stage.setText("Ready: Detect (Ctrl+D) finds nodule candidates in this series.")
        self._update_enabled()

    # --- state → panel ----------------------------------------------------------------
    def _on_result(self) -> None:
        result = self.state.result
        self._show_grouping()
        if result is None:
            self.disclaimer.setText("")
        else:
            self.disclaimer.setText(DEMO_DISCLAIMER if self.controller.provider.demo else DISCLAIMER)
        self._update_enabled()

    def _sync_thresholds(self) -> None:
        t = self.state.thresholds
        self.nodule_slider.set_value(t.nodule)
        self.band_slider.set_value(t.near_miss_band)
        self.malignancy_slider.set_value(t.malignancy)

    def _sync_overlay(self) -> None:
        self.overlay_mode.blockSignals(True)
        self.overlay_mode.setCurrentIndex(self.overlay_mode.findData(self.state.overlay_mode.value))
        self.overlay_mode.blockSignals(False)
        self.opacity.blockSignals(True)
        self.opacity.setValue(int(round(self.state.overlay_opacity * 100)))
        self.opacity.blockSignals(False)
        self.hide_cad.blockSignals(True)
        self.hide_cad.setChecked(self.state.hide_cad)
        self.hide_cad.blockSignals(False)

    # --- segmentation threshold ---------------------------------------------------------
    def _seg_moved(self, _value: float) -> None:
        if hasattr(self, "_regroup_timer"):
            self._regroup_timer.start()

    def chosen_grouping(self) -> GroupingSettings:
        """The grouping settings the controls show (a re-group asks for these)."""
        return dataclasses.replace(
            self.state.grouping, seg_threshold=self.seg_slider.value(), erosion=self.erosion.currentData(),
            method=self.method.currentData(),
        )

    def _request_regroup(self) -> None:
        if not self.controller.regroup(self.chosen_grouping()) and not self.controller.busy:
            self._show_grouping()

    def _show_grouping(self) -> None:
        """Show the current result's grouping settings (threshold, erosion) in the controls."""
        grouping = self.state.grouping
        self.seg_slider.set_value(grouping.seg_threshold)
        self.erosion.blockSignals(True)
        self.erosion.setCurrentIndex(max(0, self.erosion.findData(grouping.erosion)))
        self.erosion.blockSignals(False)
        self.method.blockSignals(True)
        self.method.setCurrentIndex(max(0, self.method.findData(grouping.method)))
        self.method.blockSignals(False)


def progress_text(kind: str, stage: str, fraction: float, elapsed_s: float, device: str | None) -> str:
    """The running line: stage, share done, elapsed time, an ETA once it can be guessed, and the device.

    The ETA assumes the rest goes as fast as what is done (shown from 5 % on).
    """
    verb = "Re-grouping" if kind == "regroup" else "Detecting"
    where = f" on {device}" if device else ""
    text = f"{verb}{where}: {stage or 'starting'} · {fraction:.0%} · {elapsed_s:.1f} s"
    if 0.05 <= fraction < 1.0 and elapsed_s > 0.5:
        text += f", about {elapsed_s * (1.0 - fraction) / fraction:.0f} s left"
    return text
