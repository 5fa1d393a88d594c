"""Finding labels that would overprint are stacked into one."""

from __future__ import annotations

import numpy as np

from app.marker_labels import CHAR_PX, LINE_PX, stack_labels
from app.planes import Plane
from tests.app.conftest import detect_and_wait, open_and_wait
from tests.app.fakes import FakeDetector


def test_far_apart_labels_stay_separate_in_priority_order():
    labels = stack_labels(np.array([0.0, 100.0, 200.0]), np.array([0.0, 0.0, 0.0]), ["1", "2", "3"],
                          np.array([0.2, 0.9, 0.5]))
    assert [(s.leader, s.members, s.text) for s in labels] == [(1, (1,), "2"), (2, (2,), "3"), (0, (0,), "1")]


def test_overlapping_labels_stack_under_the_most_important():
    # "366" is 3 characters wide: 2 px right and 5 px down overlaps it; more than a line below 367 does not
    x = np.array([0.0, 2.0, 10.0, 0.0])
    y = np.array([0.0, 5.0, -3.0, 5.0 + LINE_PX + 1.0])
    labels = stack_labels(x, y, ["366", "367", "368", "369"], np.array([0.6, 0.8, 0.7, 0.9]))
    assert [(s.leader, s.members, s.text) for s in labels] == [(3, (3,), "369"), (1, (1, 2, 0), "367, 368, 366")]


def test_a_stacked_label_grows_and_counts_the_rest():
    n = 6
    labels = stack_labels(np.arange(n) * CHAR_PX, np.zeros(n), [str(10 + k) for k in range(n)], -np.arange(n))
    assert len(labels) == 1 and labels[0].text == "10, 11, 12 +3" and labels[0].leader == 0


def test_ties_keep_input_order_and_nothing_in_gives_nothing():
    labels = stack_labels(np.zeros(2), np.zeros(2), ["7", "8"], np.zeros(2))
    assert labels[0].members == (0, 1)
    assert stack_labels(np.zeros(0), np.zeros(0), [], np.zeros(0)) == []


def test_crowded_markers_share_one_label_in_the_view(qtbot, make_window, write_volume):
    # two small findings 4.8 mm apart (each outside the other's radius: two lesions, two numbers)
    specs = [((12, 24, 20), 0.95, 0.85, 4.0), ((12, 24, 26), 0.80, 0.20, 4.0)]
    window = make_window(detector=FakeDetector(specs))
    open_and_wait(qtbot, window, write_volume("ct.mhd"))
    detect_and_wait(qtbot, window)
    axial = window.views[Plane.AXIAL]
    axial.go_to_slice(12)
    from PySide6.QtCore import QRectF

    axial.viewbox.setRange(QRectF(0, 0, 30, 30), padding=0)  # zoomed in: apart
    texts = sorted(label.toPlainText() for label in axial.labels if label.isVisible())
    assert texts == ["1", "2"]
    axial.viewbox.setRange(QRectF(-2000, -2000, 4000, 4000), padding=0)  # far out: one stacked label
    texts = sorted(label.toPlainText() for label in axial.labels if label.isVisible())
    assert texts == ["1, 2"]
    second = window.state.findings.findings[1].id
    window.state.select(second, jump=False)  # the selected finding leads its stack (selecting zooms in: zoom out again)
    axial.viewbox.setRange(QRectF(-2000, -2000, 4000, 4000), padding=0)
    texts = sorted(label.toPlainText() for label in axial.labels if label.isVisible())
    assert texts == ["2, 1"]
