"""The book-style pipeline (``engine.detection.book_style``) finds what ours finds when ours works as the book does.

Ours works as the book does with the ``components`` grouping (SPEC §4), which is no longer the default
(``peaks`` is), so the detector here asks for it by name."""

from __future__ import annotations

import numpy as np
import pytest

from engine.detection.book_style import _crop, detect_book_style
from engine.phantom import generate_series


@pytest.fixture(scope="module")
def phantom():
    ct, _truth = generate_series(3, preset="small")
    return ct


def test_crop_is_shifted_inside_and_padded() -> None:
    hu = np.arange(40 * 50 * 30, dtype=np.int16).reshape(40, 50, 30) - 1000
    crop = _crop(hu, np.array([0.0, 49.0, 15.0]))
    # index: starts at 0 (shifted in); row: ends at the last row; col: 30 < 48, padded around the whole axis
    np.testing.assert_array_equal(crop[:, :, 9:39], np.clip(hu[0:32, 2:50, :], -1000, 1000))
    assert (crop[:, :, :9] == -1000).all() and (crop[:, :, 39:] == -1000).all()


def test_same_candidates_as_the_detector_on_every_slice(phantom) -> None:
    from engine.detection import Detector, DetectorConfig, GroupingSettings

    book_grouping = GroupingSettings(method="components")
    config = DetectorConfig(grouping=book_grouping, lung_region=False, fold_batch_norms=False)
    detector = Detector.default(device="cpu", config=config)
    detector.classifier.shape_head = None  # the book has no shape head (and its grouping no region sizes)
    ours = detector.detect(phantom)
    assert ours.grouping == book_grouping
    book = detect_book_style(phantom, detector.segmentation, detector.classifier, detector.malignancy)
    assert len(ours.candidates) == len(book.centers_irc) > 0
    centers = np.array([c.center_irc for c in ours.candidates])
    ours_order = np.lexsort(centers.T[::-1])
    book_order = np.lexsort(book.centers_irc.T[::-1])
    np.testing.assert_allclose(centers[ours_order], book.centers_irc[book_order], atol=1e-6)
    p_nodule = np.array([c.p_nodule for c in ours.candidates])[ours_order]
    p_malignant = np.array([c.p_malignant for c in ours.candidates])[ours_order]
    np.testing.assert_allclose(p_nodule, book.p_nodule[book_order], atol=1e-4)
    np.testing.assert_allclose(p_malignant, book.p_malignant[book_order], atol=1e-4)
    assert set(book.timings) == {"segmentation", "grouping", "classification", "total"}
    assert book.timings["total"] >= book.timings["segmentation"] > 0
