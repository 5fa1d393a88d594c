"""The Qt desktop viewer (PySide6 + pyqtgraph).

Layout, from the bottom up:

* Qt-free model and pure functions, tested without a ``QApplication``:
  :mod:`app.state` (``ViewerState``), :mod:`app.planes` (slicing and plane
  geometry), :mod:`app.windowing` (window/level and presets),
  :mod:`app.findings` (threshold classes, marker geometry), :mod:`app.readout`.
* Qt widgets bound to the state: :mod:`app.slice_view`, :mod:`app.findings_panel`,
  :mod:`app.detection_panel`, :mod:`app.crop_preview`, :mod:`app.main_window`.
* Background work on ``QThread`` workers: :mod:`app.workers`.

Torch is never imported on the GUI thread; the detect worker imports the engine's
detector lazily.
"""

from __future__ import annotations
