"""Ruler measurements: length on a volume of known anisotropic spacing, serialisation, state (no Qt)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from app.measurements import Measurement, ruler_length_mm
from app.state import ViewerState
from engine.geometry import Geometry
from engine.io.volume import CtVolume

SPACING_XYZ = (0.7, 0.9, 2.5)  # col, row, index


def test_ruler_length_is_the_spacing_scaled_distance() -> None:
    geometry = Geometry((10.0, -5.0, 3.0), SPACING_XYZ)
    # 10 columns, 4 rows and 2 slices apart: sqrt((10·0.7)² + (4·0.9)² + (2·2.5)²)
    assert ruler_length_mm(geometry, (1, 2, 3), (3, 6, 13)) == pytest.approx(math.sqrt(7.0**2 + 3.6**2 + 5.0**2))
    assert ruler_length_mm(geometry, (0, 0, 0), (0, 0, 10)) == pytest.approx(7.0)  # along a row
    assert ruler_length_mm(geometry, (0, 0, 0), (0, 10, 0)) == pytest.approx(9.0)  # along a column
    # a rotated direction matrix (rows run along -x, columns along +y) keeps lengths
    rotated = Geometry((0.0, 0.0, 0.0), SPACING_XYZ, (0, -1, 0, 1, 0, 0, 0, 0, 1))
    assert ruler_length_mm(rotated, (0, 0, 0), (0, 3, 4)) == pytest.approx(math.hypot(3 * 0.9, 4 * 0.7))


def test_measurement_round_trips_through_a_dict() -> None:
    geometry = Geometry((0.0, 0.0, 0.0), SPACING_XYZ)
    m = Measurement.between(geometry, 3, 0, 7, (7, 1.5, 2.0), (7, 11.5, 2.0))
    assert m.length_mm == pytest.approx(9.0) and m.label() == "9.0 mm"
    assert Measurement.from_dict(m.to_dict()) == m
    with pytest.raises(ValueError, match="not a measurement"):
        Measurement.from_dict({"id": 1})
    with pytest.raises(ValueError, match="axis"):
        Measurement(1, 3, 0, (0, 0, 0), (1, 1, 1), 1.0)


def test_state_holds_measurements_and_clears_them_for_a_new_volume() -> None:
    state = ViewerState()
    events: list[str] = []
    state.subscribe("measurements", lambda: events.append("m"))
    with pytest.raises(ValueError, match="open a series"):
        state.new_measurement(0, 0, (0, 0, 0), (0, 1, 1))
    ct = CtVolume(np.zeros((4, 8, 8), np.int16), Geometry((0, 0, 0), SPACING_XYZ), "1.2")
    state.set_volume(ct)
    a = state.new_measurement(0, 2, (2, 0, 0), (2, 0, 4))
    b = state.new_measurement(1, 3, (0, 3, 0), (3, 3, 0))
    assert (a.id, b.id) == (1, 2) and state.selected_measurement == 2
    assert b.length_mm == pytest.approx(7.5)
    assert state.measurements == (a, b)
    with pytest.raises(ValueError, match="exists"):
        state.add_measurement(a)
    assert state.remove_measurement(2) and not state.remove_measurement(2)
    assert state.measurements == (a,) and state.selected_measurement is None
    state.select_measurement(1)
    assert state.selected_measurement == 1
    state.select_measurement(99)
    assert state.selected_measurement is None
    state.set_measurements([b])
    assert state.new_measurement(0, 1, (1, 0, 0), (1, 1, 0)).id == 3
    n = len(events)
    state.set_volume(ct)
    assert state.measurements == () and len(events) == n + 1
    assert state.new_measurement(0, 1, (1, 0, 0), (1, 1, 0)).id == 1
