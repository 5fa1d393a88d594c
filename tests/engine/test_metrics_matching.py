"""Matching rules: the book's distance/diameter < 0.7 and LUNA16's distance < radius."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from engine.metrics.matching import (
    as_points,
    book_match_matrix,
    distance_matrix,
    luna_hit_matrix,
)


def test_distance_matrix_hand_values() -> None:
    truth = [(0.0, 0.0, 0.0), (10.0, 0.0, 0.0)]
    dets = [(3.0, 4.0, 0.0), (10.0, 0.0, 2.0), (0.0, 0.0, -1.0)]
    expected = [[5.0, np.hypot(10, 2), 1.0], [np.hypot(7, 4), 2.0, np.hypot(10, 1)]]
    assert_allclose(distance_matrix(np.array(truth), np.array(dets)), expected)


@pytest.mark.parametrize("n_truth, n_det", [(0, 0), (0, 3), (2, 0)])
def test_empty_inputs_give_empty_matrices(n_truth: int, n_det: int) -> None:
    truth = np.zeros((n_truth, 3)) if n_truth else []
    dets = np.ones((n_det, 3)) if n_det else []
    assert distance_matrix(truth, dets).shape == (n_truth, n_det)
    assert book_match_matrix(truth, np.full(n_truth, 5.0), dets).shape == (n_truth, n_det)
    assert luna_hit_matrix(truth, np.full(n_truth, 5.0), dets).shape == (n_truth, n_det)


def test_book_rule_is_strict_below_point_seven_of_the_diameter() -> None:
    truth = np.array([[0.0, 0.0, 0.0]])
    dets = np.array([[6.99, 0.0, 0.0], [7.0, 0.0, 0.0], [0.0, 0.0, -4.0]])
    assert_array_equal(book_match_matrix(truth, [10.0], dets), [[True, False, True]])


def test_book_rule_scales_with_each_nodules_diameter() -> None:
    truth = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    det = np.array([[0.0, 5.0, 0.0]])
    # 5 / 6 = 0.83 → no; 5 / 8 = 0.625 → yes
    assert_array_equal(book_match_matrix(truth, [6.0, 8.0], det), [[False], [True]])


def test_book_rule_never_matches_a_nodule_without_a_diameter() -> None:
    truth = np.array([[0.0, 0.0, 0.0]] * 2)
    det = np.array([[0.0, 0.0, 0.0]])
    assert_array_equal(book_match_matrix(truth, [0.0, -1.0], det), [[False], [False]])


def test_luna_rule_is_strict_inside_the_radius() -> None:
    truth = np.array([[10.0, 20.0, 30.0]])
    dets = np.array([[10.0, 20.0, 34.99], [10.0, 20.0, 35.0], [13.0, 24.0, 30.0]])
    assert_array_equal(luna_hit_matrix(truth, [10.0], dets), [[True, False, False]])


def test_luna_rule_gives_negative_diameters_ten_millimetres() -> None:
    truth = np.array([[0.0, 0.0, 0.0]])
    dets = np.array([[4.9, 0.0, 0.0], [5.1, 0.0, 0.0]])
    assert_array_equal(luna_hit_matrix(truth, [-1.0], dets), [[True, False]])
    assert_array_equal(luna_hit_matrix(truth, [-1.0], dets, missing_diameter_mm=12.0), [[True, True]])


def test_mismatched_diameters_and_bad_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="diameters"):
        book_match_matrix(np.zeros((2, 3)), [1.0], np.zeros((1, 3)))
    with pytest.raises(ValueError, match="diameters"):
        luna_hit_matrix(np.zeros((2, 3)), [1.0, 2.0, 3.0], np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        as_points(np.zeros((4, 2)))
