"""The book's 3×4 confusion table, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from engine.luna import Annotation
from engine.metrics.confusion import (
    ConfusionTable,
    confusion_table,
    detection_classes,
    format_confusion,
)
from engine.metrics.records import Detection, detections_from

UID = "1.2.3"


def nodule(xyz, diameter, malignant=False, uid=UID) -> Annotation:
    return Annotation(series_uid=uid, center_xyz=tuple(map(float, xyz)), diameter_mm=diameter, is_malignant=malignant)


def det(xyz, p_nodule, p_malignant=None, uid=UID) -> Detection:
    return Detection(series_uid=uid, center_xyz=tuple(map(float, xyz)), p_nodule=p_nodule, p_malignant=p_malignant)


def test_hand_computed_series() -> None:
    truth = [
        nodule((0, 0, 0), 10.0),  # A, benign
        nodule((100, 0, 0), 20.0, malignant=True),  # B, malignant
        nodule((0, 100, 0), 6.0),  # C, benign, never found
    ]
    dets = [
        det((1, 0, 0), 0.9, 0.2),  # A → Pred. Benign
        det((2, 0, 0), 0.3, 0.9),  # A → Filtered Out (A keeps the higher class)
        det((105, 0, 0), 0.8, 0.7),  # B → Pred. Malignant (5/20)
        det((100, 13, 0), 0.2, 0.9),  # B → Filtered Out (13/20 = 0.65 < 0.7)
        det((50, 50, 50), 0.95, 0.9),  # nothing → non-nodule, Pred. Malignant
        det((-50, 0, 0), 0.1, 0.0),  # nothing → non-nodule, Filtered Out
        det((0, 104.3, 0), 0.6, 0.1),  # 4.3/6 = 0.717 misses C → non-nodule, Pred. Benign
    ]
    table = confusion_table(truth, dets)
    assert table.counts == (
        (0, 1, 1, 1),
        (1, 0, 1, 0),
        (0, 0, 0, 1),
    )
    assert table.n_nodules == 3
    assert table.nodules_detected == 2
    assert table.nodules_segmented == 2
    assert table.false_positives == 2
    assert table.malignant_called_malignant == 1


def test_detection_matching_two_nodules_counts_for_both() -> None:
    truth = [nodule((0, 0, 0), 10.0), nodule((4, 0, 0), 10.0, malignant=True)]
    table = confusion_table(truth, [det((2, 0, 0), 0.9, 0.1)])
    assert table.counts == ((0, 0, 0, 0), (0, 0, 1, 0), (0, 0, 1, 0))


def test_no_detections_means_every_nodule_is_a_complete_miss() -> None:
    truth = [nodule((0, 0, 0), 10.0), nodule((40, 0, 0), 5.0, malignant=True), nodule((80, 0, 0), 7.0)]
    assert confusion_table(truth, []).counts == ((0, 0, 0, 0), (2, 0, 0, 0), (1, 0, 0, 0))


def test_no_nodules_means_every_detection_is_a_non_nodule() -> None:
    dets = [det((0, 0, 0), 0.1), det((1, 0, 0), 0.7, 0.2), det((2, 0, 0), 0.7, 0.8), det((3, 0, 0), 0.9, 0.6)]
    assert confusion_table([], dets).counts == ((0, 1, 1, 2), (0, 0, 0, 0), (0, 0, 0, 0))


def test_thresholds_are_inclusive_for_positive_calls() -> None:
    assert_array_equal(detection_classes([0.5, 0.4999, 0.5], [0.5, 0.9, 0.4999]), [3, 1, 2])
    # custom thresholds
    assert_array_equal(detection_classes([0.3, 0.3], [0.6, 0.8], nodule_threshold=0.2, malignancy_threshold=0.7), [2, 3])


def test_missing_malignancy_counts_as_predicted_nodule() -> None:
    truth = [nodule((0, 0, 0), 10.0, malignant=True)]
    assert confusion_table(truth, [det((0, 0, 0), 0.9, None)]).counts[2] == (0, 0, 1, 0)


def test_unknown_malignancy_label_goes_to_the_benign_row() -> None:
    truth = [Annotation(series_uid=UID, center_xyz=(0.0, 0.0, 0.0), diameter_mm=8.0)]
    assert confusion_table(truth, []).counts[1] == (1, 0, 0, 0)


def test_matching_stays_within_a_series() -> None:
    truth = [nodule((0, 0, 0), 10.0, uid="a")]
    table = confusion_table(truth, [det((0, 0, 0), 0.9, 0.1, uid="b")])
    assert table.counts == ((0, 0, 1, 0), (1, 0, 0, 0), (0, 0, 0, 0))


def test_thresholds_move_counts_between_columns() -> None:
    truth = [nodule((0, 0, 0), 10.0, malignant=True)]
    dets = [det((0, 0, 0), 0.6, 0.55)]
    assert confusion_table(truth, dets).counts[2] == (0, 0, 0, 1)
    assert confusion_table(truth, dets, malignancy_threshold=0.6).counts[2] == (0, 0, 1, 0)
    assert confusion_table(truth, dets, nodule_threshold=0.7).counts[2] == (0, 1, 0, 0)


def test_tables_add_and_validate() -> None:
    a = ConfusionTable(((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)))
    b = ConfusionTable(((0, 1, 0, 0), (0, 0, 0, 1), (1, 0, 0, 0)))
    assert (a + b).counts == ((0, 2, 2, 3), (4, 5, 6, 8), (9, 9, 10, 11))
    assert sum([a, b], ConfusionTable()) == a + b
    with pytest.raises(ValueError, match="Complete Miss"):
        ConfusionTable(((1, 0, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)))
    with pytest.raises(ValueError, match="3x4"):
        ConfusionTable.from_array(np.zeros((2, 4), dtype=int))
    with pytest.raises(ValueError, match="negative"):
        ConfusionTable(((0, -1, 0, 0), (0, 0, 0, 0), (0, 0, 0, 0)))
    assert a.to_dict()["Non-Nodules"] == {"Filtered Out": 1, "Pred. Benign": 2, "Pred. Malignant": 3}
    assert a.to_dict()["Malignant"]["Complete Miss"] == 8


def test_format_matches_the_books_layout() -> None:
    table = ConfusionTable(((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)))
    expected = "\n".join(
        [
            "Total",
            "                 |    Complete Miss |     Filtered Out |     Pred. Benign |  Pred. Malignant",
            "     Non-Nodules |                  |                1 |                2 |                3",
            "          Benign |                4 |                5 |                6 |                7",
            "       Malignant |                8 |                9 |               10 |               11",
        ]
    )
    assert format_confusion(table, "Total") == expected


def test_format_without_malignancy_merges_the_prediction_columns() -> None:
    table = ConfusionTable(((0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11)))
    lines = format_confusion(table, with_malignancy=False, cell_width=6).splitlines()
    assert lines[0] == "       | Complete Miss | Filtered Out | Pred. Nodule"
    assert lines[1] == "Non-Nodules |        |      1 |      5"
    assert lines[3] == "Malignant |      8 |      9 |     21"


def test_detections_from_engine_candidates() -> None:
    class FakeCandidate:
        center_xyz = (1, 2, 3)
        p_nodule = np.float32(0.25)
        p_malignant = None
        diameter_mm = 4.5

    (d,) = detections_from("s", [FakeCandidate()])
    assert d == Detection("s", (1.0, 2.0, 3.0), 0.25, None, 4.5)
