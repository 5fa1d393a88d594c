"""Fixtures of the reliability suite: the viewer's (a shown window, a fake detector, captured dialogs)."""

from __future__ import annotations

from tests.app.conftest import _isolated_settings, errors, fake_detector, make_window, window, write_volume  # noqa: F401
from tests.app.test_training_panel import make_panel, runs_root  # noqa: F401
