"""The dark theme: a Fusion palette and a few style rules, plus the marker colours.

Reading rooms are dim; a dark interface keeps the eye adapted to the image.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

#: Marker colours (RGB): nodule, malignant nodule, accepted, rejected.
NODULE_RGB = (255, 210, 40)
MALIGNANT_RGB = (255, 70, 70)
ACCEPTED_RGB = (70, 220, 120)
REJECTED_RGB = (150, 150, 150)
#: Crosshair colours (Slicer's convention: the line shows where that plane cuts).
PLANE_RGB = {"axial": (230, 80, 80), "coronal": (90, 200, 90), "sagittal": (235, 215, 70)}
#: Background of the image views.
VIEW_BACKGROUND = (0, 0, 0)

_STYLE = """
QToolTip { color: #e8e8e8; background-color: #2b2b2b; border: 1px solid #555; }
QDockWidget::title { background: #2d2f33; padding: 4px 6px; }
QGroupBox { border: 1px solid #3c3f44; border-radius: 4px; margin-top: 8px; padding-top: 6px; }
QGroupBox::title { subcontrol-origin: margin; left: 8px; padding: 0 3px; color: #b8bcc4; }
QTableView { gridline-color: #3a3a3a; selection-background-color: #2f5f8f; }
QHeaderView::section { background: #2d2f33; color: #c8c8c8; border: 0; border-right: 1px solid #3c3f44; padding: 3px; }
QPushButton#detectButton { font-weight: bold; padding: 6px 14px; background: #2f5f8f; border: 1px solid #4b7fb3; border-radius: 4px; }
QPushButton#detectButton:disabled { background: #33373c; color: #777; border-color: #444; }
QLabel#disclaimer { color: #ffb347; }
QLabel#counts { font-weight: bold; }
QStatusBar QLabel { padding: 0 6px; }
"""


def dark_palette() -> QPalette:
    """A neutral dark palette (grey, not blue-black, so image contrast is unaffected)."""
    p = QPalette()
    window, base, text = QColor(37, 39, 42), QColor(25, 26, 28), QColor(225, 225, 225)
    p.setColor(QPalette.ColorRole.Window, window)
    p.setColor(QPalette.ColorRole.WindowText, text)
    p.setColor(QPalette.ColorRole.Base, base)
    p.setColor(QPalette.ColorRole.AlternateBase, QColor(32, 33, 36))
    p.setColor(QPalette.ColorRole.ToolTipBase, QColor(43, 43, 43))
    p.setColor(QPalette.ColorRole.ToolTipText, text)
    p.setColor(QPalette.ColorRole.Text, text)
    p.setColor(QPalette.ColorRole.Button, QColor(48, 50, 54))
    p.setColor(QPalette.ColorRole.ButtonText, text)
    p.setColor(QPalette.ColorRole.BrightText, QColor(255, 90, 90))
    p.setColor(QPalette.ColorRole.Highlight, QColor(47, 95, 143))
    p.setColor(QPalette.ColorRole.HighlightedText, QColor(255, 255, 255))
    p.setColor(QPalette.ColorRole.Link, QColor(110, 170, 240))
    p.setColor(QPalette.ColorRole.PlaceholderText, QColor(130, 130, 130))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        p.setColor(QPalette.ColorGroup.Disabled, role, QColor(120, 120, 120))
    return p


def apply_dark_theme(app: QApplication) -> None:
    """Switch the application to the Fusion style with the dark palette."""
    app.setStyle("Fusion")
    app.setPalette(dark_palette())
    app.setStyleSheet(_STYLE)
