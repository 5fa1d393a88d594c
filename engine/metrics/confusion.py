"""The book's end-to-end confusion table (SPEC §5).

Rows are the truth: Non-Nodules, Benign, Malignant. Columns are what the
pipeline made of it: Complete Miss (no candidate at all), Filtered Out (a
candidate the nodule classifier rejected, ``p_nodule < nodule_threshold``),
Pred. Benign (a nodule with ``p_malignant < malignancy_threshold``, or with no
malignancy model) and Pred. Malignant.

Matching uses the book's rule (``distance / diameter < 0.7``). A true nodule
takes the highest class among the detections that match it (Complete Miss when
none does); a detection that matches no nodule counts in the Non-Nodules row;
a detection matching several nodules counts for each of them. Non-nodules have
no Complete Miss cell (they were never listed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from engine.luna import Annotation
from engine.metrics.matching import BOOK_MATCH_RATIO, book_match_matrix
from engine.metrics.records import Detection, annotation_arrays, detection_arrays, group_by_series

ROW_LABELS = ("Non-Nodules", "Benign", "Malignant")
COLUMN_LABELS = ("Complete Miss", "Filtered Out", "Pred. Benign", "Pred. Malignant")
#: Column indices.
MISSED, FILTERED, PRED_BENIGN, PRED_MALIGNANT = range(4)
#: Row indices.
NON_NODULE, BENIGN, MALIGNANT = range(3)


@dataclass(frozen=True)
class ConfusionTable:
    """Counts of the book's 3×4 table.

    Args:
        counts: Three rows (Non-Nodules, Benign, Malignant) of four counts
            (Complete Miss, Filtered Out, Pred. Benign, Pred. Malignant).
    """

    counts: tuple[tuple[int, int, int, int], ...] = ((0, 0, 0, 0),) * 3

    def __post_init__(self) -> None:
        array = np.asarray(self.counts, dtype=np.int64)
        if array.shape != (3, 4):
            raise ValueError(f"a confusion table is 3x4, got shape {array.shape}")
        if (array < 0).any():
            raise ValueError("confusion counts cannot be negative")
        if array[NON_NODULE, MISSED] != 0:
            raise ValueError("non-nodules have no 'Complete Miss' count")
        object.__setattr__(self, "counts", tuple(tuple(int(v) for v in row) for row in array))

    @classmethod
    def from_array(cls, array: np.ndarray) -> "ConfusionTable":
        """Build from an int ``(3, 4)`` array."""
        return cls(tuple(tuple(int(v) for v in row) for row in np.asarray(array)))

    def as_array(self) -> np.ndarray:
        """The counts as an int64 ``(3, 4)`` array (rows truth, columns outcome)."""
        return np.asarray(self.counts, dtype=np.int64)

    def __add__(self, other: "ConfusionTable") -> "ConfusionTable":
        if not isinstance(other, ConfusionTable):
            return NotImplemented
        return ConfusionTable.from_array(self.as_array() + other.as_array())

    @property
    def n_nodules(self) -> int:
        """True nodules (benign + malignant rows)."""
        return int(self.as_array()[BENIGN:].sum())

    @property
    def nodules_detected(self) -> int:
        """True nodules predicted as nodules (Pred. Benign or Pred. Malignant)."""
        return int(self.as_array()[BENIGN:, PRED_BENIGN:].sum())

    @property
    def nodules_segmented(self) -> int:
        """True nodules the segmentation found at all (every column but Complete Miss)."""
        return int(self.as_array()[BENIGN:, FILTERED:].sum())

    @property
    def false_positives(self) -> int:
        """Non-nodules predicted as nodules."""
        return int(self.as_array()[NON_NODULE, PRED_BENIGN:].sum())

    @property
    def malignant_called_malignant(self) -> int:
        """Malignant nodules predicted malignant."""
        return int(self.counts[MALIGNANT][PRED_MALIGNANT])

    def to_dict(self) -> dict[str, dict[str, int]]:
        """``{row label: {column label: count}}``, without the Non-Nodules miss cell."""
        out: dict[str, dict[str, int]] = {}
        for r, row in enumerate(ROW_LABELS):
            cells = dict(zip(COLUMN_LABELS, self.counts[r]))
            if r == NON_NODULE:
                del cells[COLUMN_LABELS[MISSED]]
            out[row] = cells
        return out


def detection_classes(
    p_nodule: np.ndarray,
    p_malignant: np.ndarray,
    nodule_threshold: float = 0.5,
    malignancy_threshold: float = 0.5,
) -> np.ndarray:
    """The column each detection falls in.

    Args:
        p_nodule: ``(D,)`` nodule probabilities.
        p_malignant: ``(D,)`` malignancy probabilities, NaN when unknown (then a
            nodule counts as Pred. Benign, i.e. "predicted nodule").
        nodule_threshold: Below it a detection is Filtered Out.
        malignancy_threshold: At or above it a nodule is Pred. Malignant.

    Returns:
        int64 ``(D,)`` of ``FILTERED`` (1), ``PRED_BENIGN`` (2) or ``PRED_MALIGNANT`` (3).
    """
    p_nodule = np.asarray(p_nodule, dtype=np.float64)
    p_malignant = np.asarray(p_malignant, dtype=np.float64)
    malignant = np.nan_to_num(p_malignant, nan=-np.inf) >= malignancy_threshold
    classes = np.where(malignant, PRED_MALIGNANT, PRED_BENIGN)
    return np.where(p_nodule < nodule_threshold, FILTERED, classes).astype(np.int64)


def confusion_counts(
    truth_xyz: np.ndarray,
    truth_diameter_mm: np.ndarray,
    truth_malignant: np.ndarray,
    det_xyz: np.ndarray,
    det_p_nodule: np.ndarray,
    det_p_malignant: np.ndarray,
    nodule_threshold: float = 0.5,
    malignancy_threshold: float = 0.5,
    ratio: float = BOOK_MATCH_RATIO,
) -> np.ndarray:
    """The confusion counts of one series, from arrays.

    Args:
        truth_xyz: ``(T, 3)`` nodule centres, LPS mm.
        truth_diameter_mm: ``(T,)`` nodule diameters, mm.
        truth_malignant: ``(T,)`` bool malignancy labels.
        det_xyz: ``(D, 3)`` detection centres, LPS mm.
        det_p_nodule: ``(D,)`` nodule probabilities.
        det_p_malignant: ``(D,)`` malignancy probabilities (NaN = unknown).
        nodule_threshold, malignancy_threshold: See :func:`detection_classes`.
        ratio: The book's matching ratio.

    Returns:
        int64 ``(3, 4)`` counts.
    """
    classes = detection_classes(det_p_nodule, det_p_malignant, nodule_threshold, malignancy_threshold)
    match = book_match_matrix(truth_xyz, truth_diameter_mm, det_xyz, ratio)
    counts = np.zeros((3, 4), dtype=np.int64)
    # best class per nodule; 0 (MISSED) where nothing matches
    nodule_class = np.where(match, classes[None, :], MISSED).max(axis=1, initial=MISSED)
    rows = np.where(np.asarray(truth_malignant, dtype=bool), MALIGNANT, BENIGN)
    np.add.at(counts, (rows, nodule_class), 1)
    unmatched = ~match.any(axis=0)
    counts[NON_NODULE] += np.bincount(classes[unmatched], minlength=4)[:4]
    return counts


def confusion_table(
    annotations: Sequence[Annotation],
    detections: Sequence[Detection],
    nodule_threshold: float = 0.5,
    malignancy_threshold: float = 0.5,
    ratio: float = BOOK_MATCH_RATIO,
) -> ConfusionTable:
    """The book's table over any number of series (matching happens within a series).

    Args:
        annotations: True nodules (``is_malignant`` True → Malignant row,
            otherwise Benign).
        detections: Every candidate the pipeline produced, unfiltered.
        nodule_threshold, malignancy_threshold: See :func:`detection_classes`.
        ratio: The book's matching ratio.

    Returns:
        The summed table.
    """
    truth_by_series = group_by_series(annotations)
    dets_by_series = group_by_series(detections)
    total = np.zeros((3, 4), dtype=np.int64)
    for uid in set(truth_by_series) | set(dets_by_series):
        t_xyz, t_diam, t_mal = annotation_arrays(truth_by_series.get(uid, []))
        d_xyz, d_pn, d_pm = detection_arrays(dets_by_series.get(uid, []))
        total += confusion_counts(
            t_xyz, t_diam, t_mal, d_xyz, d_pn, d_pm, nodule_threshold, malignancy_threshold, ratio
        )
    return ConfusionTable.from_array(total)


def format_confusion(
    table: ConfusionTable, label: str = "", with_malignancy: bool = True, cell_width: int = 16
) -> str:
    """The table as text in the book's layout (right-aligned cells joined by ``|``).

    Args:
        table: The counts.
        label: A title line printed first (omitted when empty).
        with_malignancy: False merges the two prediction columns into
            "Pred. Nodule" (no malignancy model).
        cell_width: Width of each cell in characters.

    Returns:
        Lines joined by newlines, without a trailing newline.
    """
    counts = table.as_array()
    columns = list(COLUMN_LABELS)
    if not with_malignancy:
        counts = np.concatenate([counts[:, :PRED_BENIGN], counts[:, PRED_BENIGN:].sum(axis=1, keepdims=True)], axis=1)
        columns = columns[:PRED_BENIGN] + ["Pred. Nodule"]

    def line(cells: Sequence[str]) -> str:
        return " | ".join(f"{cell:>{cell_width}}" for cell in cells)

    lines = [label] if label else []
    lines.append(line([""] + columns))
    for r, name in enumerate(ROW_LABELS):
        cells = [str(v) for v in counts[r]]
        if r == NON_NODULE:
            cells[MISSED] = ""
        lines.append(line([name] + cells))
    return "\n".join(lines)
