"""Toolbar controls of the reading tools: slab mode and thickness, cine speed and looping.

The on/off switches (Measure M, Slab S, Cine Space) are window actions; this
widget holds the settings beside them, bound to the state both ways.
"""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QSpinBox, QWidget

from app.reading_state import CINE_FPS_RANGE
from app.slab import MAX_THICKNESS_MM, MIN_THICKNESS_MM, SlabMode
from app.state import ViewerState


class ReadingToolsWidget(QWidget):
    """Slab mode and thickness (mm), cine frames per second and loop, for the toolbar.

    Args:
        state: The viewer state.
        parent: Qt parent.
    """

    def __init__(self, state: ViewerState, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.state = state
        self.mode = QComboBox()
        for mode in SlabMode:
            self.mode.addItem(mode.label, mode.value)
        self.mode.setToolTip("How the slab combines its slices: MIP (vessels become lines), MinIP (airways), average")
        self.thickness = QDoubleSpinBox()
        self.thickness.setRange(MIN_THICKNESS_MM, MAX_THICKNESS_MM)
        self.thickness.setSingleStep(1.0)
        self.thickness.setDecimals(0)
        self.thickness.setSuffix(" mm")
        self.thickness.setToolTip("Slab thickness (5–20 mm)")
        self.fps = QSpinBox()
        self.fps.setRange(int(CINE_FPS_RANGE[0]), int(CINE_FPS_RANGE[1]))
        self.fps.setSuffix(" fps")
        self.fps.setToolTip("Cine speed: slices per second")
        self.loop = QCheckBox("Loop")
        self.loop.setToolTip("Cine starts again at the first slice (off: it stops at the last)")
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 0, 4, 0)
        row.setSpacing(4)
        for widget in (QLabel("Slab"), self.mode, self.thickness, QLabel("  Cine"), self.fps, self.loop):
            row.addWidget(widget)
        self.mode.currentIndexChanged.connect(lambda _i: state.set_slab(mode=self.mode.currentData()))
        self.thickness.valueChanged.connect(lambda value: state.set_slab(thickness_mm=float(value)))
        self.fps.valueChanged.connect(lambda value: state.set_cine(fps=float(value)))
        self.loop.toggled.connect(lambda on: state.set_cine(loop=on))
        self._off = [state.subscribe("slab", self.refresh), state.subscribe("cine", self.refresh)]
        self.destroyed.connect(lambda *_: [off() for off in self._off])
        self.refresh()

    def refresh(self) -> None:
        """Show the state's slab and cine settings."""
        slab = self.state.slab
        for widget, setter, value in (
            (self.mode, self.mode.setCurrentIndex, self.mode.findData(slab.mode.value)),
            (self.thickness, self.thickness.setValue, slab.thickness_mm),
            (self.fps, self.fps.setValue, int(round(self.state.cine_fps))),
            (self.loop, self.loop.setChecked, self.state.cine_loop),
        ):
            widget.blockSignals(True)
            setter(value)
            widget.blockSignals(False)
