"""The LUNA16 dataset index: series on disk, annotations, candidates (the split: :mod:`engine.series_split`).

A LUNA16-format folder holds ``subset*/<seriesuid>.mhd`` (+ ``.raw``) and CSV
files (SPEC §1.2). Only series present on disk are indexed. CSVs are streamed
row by row, so the real ~551k-row ``candidates.csv`` is never held twice.
"""

from __future__ import annotations

import ast
import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from engine.errors import CsvFormatError, DatasetError
from engine.series_split import SeriesSplit, split_series

Xyz = tuple[float, float, float]

CANDIDATE_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "class")
ANNOTATION_COLUMNS = ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")
MALIGNANCY_COLUMNS = ANNOTATION_COLUMNS + ("mal_bool",)


@dataclass(frozen=True, slots=True)
class CandidateInfo:
    """One training/evaluation sample location (SPEC §1.2).

    Args:
        is_nodule: True for annotated nodules, False for candidate-detector negatives.
        has_annotation: True when the record comes from an annotation (so it has
            a diameter and possibly a malignancy label).
        is_malignant: Malignancy label (False for non-nodules and unknown).
        diameter_mm: Annotated diameter, 0.0 for negatives.
        series_uid: The series the location is in.
        center_xyz: Location in LPS mm (x, y, z).
    """

    is_nodule: bool
    has_annotation: bool
    is_malignant: bool
    diameter_mm: float
    series_uid: str
    center_xyz: Xyz


@dataclass(frozen=True, slots=True)
class Annotation:
    """One annotated finding from ``annotations*.csv``.

    Args:
        series_uid: The series.
        center_xyz: Centre in LPS mm.
        diameter_mm: Diameter in mm (-1 allowed in the excluded list).
        is_malignant: ``mal_bool`` when the file has it, else ``None``.
        mal_details: The readers' malignancy ratings 1..5 (may be empty).
        bbox_low_xyz, bbox_high_xyz: Bounding box corners in LPS mm when present.
    """

    series_uid: str
    center_xyz: Xyz
    diameter_mm: float
    is_malignant: bool | None = None
    mal_details: tuple[int, ...] = ()
    bbox_low_xyz: Xyz | None = None
    bbox_high_xyz: Xyz | None = None


def _rows(path: Path, required: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` from a CSV after checking its header."""
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError:
        raise DatasetError("CSV file is missing", path) from None
    with handle:
        reader = csv.DictReader(handle)
        try:
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise CsvFormatError(
                    f"missing column(s) {', '.join(missing)}; the header is {','.join(header) or '(empty)'}", path
                )
            for row in reader:
                yield reader.line_num, row
        except UnicodeDecodeError as exc:
            raise CsvFormatError(f"is not utf-8 text (byte {exc.start} of a line after line {reader.line_num})", path) from None
        except csv.Error as exc:
            raise CsvFormatError(f"line {reader.line_num}: malformed CSV ({exc})", path) from None


def _number(path: Path, line: int, row: dict[str, str], column: str) -> float:
    text = row.get(column)
    try:
        value = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CsvFormatError(f"line {line}: column {column} holds {text!r}, which is not a number", path) from None
    if not math.isfinite(value):
        raise CsvFormatError(f"line {line}: column {column} holds {text!r}, which is not a finite number", path)
    return value


def _uid(path: Path, line: int, row: dict[str, str]) -> str:
    """The row's ``seriesuid``: not empty, and no path separators (it names a file)."""
    uid = (row.get("seriesuid") or "").strip()
    if not uid or uid in (".", "..") or any(c in uid for c in "/\\\0"):
        raise CsvFormatError(
            f"line {line}: column seriesuid holds {uid!r}, which cannot be a series uid (empty, or a path)", path
        )
    return uid


def _xyz(path: Path, line: int, row: dict[str, str], prefix: str = "coord") -> Xyz:
    return (
        _number(path, line, row, f"{prefix}X"),
        _number(path, line, row, f"{prefix}Y"),
        _number(path, line, row, f"{prefix}Z"),
    )


def _bool(path: Path, line: int, text: str | None, column: str) -> bool:
    value = (text or "").strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise CsvFormatError(f"line {line}: column {column} holds {text!r}, not True/False", path)


def read_annotations(path: str | Path, excluded: bool | None = None) -> list[Annotation]:
    """Read ``annotations.csv``, ``annotations_with_malignancy.csv`` or ``annotations_excluded.csv``.

    Malignancy columns are read when present (``mal_bool``, ``mal_details``,
    ``bbox*``).

    Args:
        path: The CSV file.
        excluded: Whether it is an excluded-findings list, whose diameter may be
            -1 (unknown); ``None`` decides by the file name (``*excluded*``).

    Raises:
        DatasetError: the file is missing.
        CsvFormatError: a required column is missing, a value does not parse or
            is not finite, a uid is not a uid, or a nodule's diameter is not positive.
    """
    path = Path(path)
    if excluded is None:
        excluded = "excluded" in path.name.lower()
    out = []
    for line, row in _rows(path, ANNOTATION_COLUMNS):
        diameter = _number(path, line, row, "diameter_mm")
        if diameter <= 0 and not (excluded and diameter == -1):
            raise CsvFormatError(
                f"line {line}: column diameter_mm holds {row['diameter_mm']!r}; a nodule's diameter must be positive",
                path,
            )
        malignant = None
        details: tuple[int, ...] = ()
        low = high = None
        if "mal_bool" in row:
            malignant = _bool(path, line, row["mal_bool"], "mal_bool")
        if row.get("mal_details"):
            try:
                parsed = ast.literal_eval(row["mal_details"])
                details = tuple(int(v) for v in parsed)
            except (ValueError, SyntaxError, TypeError):
                raise CsvFormatError(
                    f"line {line}: column mal_details holds {row['mal_details']!r}, not a list of ratings", path
                ) from None
        if row.get("bboxLowX"):
            low = _xyz(path, line, row, "bboxLow")
            high = _xyz(path, line, row, "bboxHigh")
        out.append(
            Annotation(
                series_uid=_uid(path, line, row),
                center_xyz=_xyz(path, line, row),
                diameter_mm=diameter,
                is_malignant=malignant,
                mal_details=details,
                bbox_low_xyz=low,
                bbox_high_xyz=high,
            )
        )
    return out


def iter_candidates(path: str | Path, series: set[str] | None = None) -> Iterator[tuple[str, Xyz, int]]:
    """Stream ``candidates.csv`` as ``(series_uid, center_xyz, class)``.

    Args:
        path: The CSV file.
        series: If given, rows of other series are skipped without parsing numbers.

    Raises:
        DatasetError, CsvFormatError.
    """
    path = Path(path)
    for line, row in _rows(path, CANDIDATE_COLUMNS):
        uid = (row["seriesuid"] or "").strip()
        if series is not None and uid not in series:
            continue
        uid = _uid(path, line, row)
        cls = _number(path, line, row, "class")
        if cls not in (0.0, 1.0):
            raise CsvFormatError(f"line {line}: column class holds {row['class']!r}, expected 0 or 1", path)
        yield uid, _xyz(path, line, row), int(cls)


def drop_duplicate_annotations(annotations: list[Annotation]) -> tuple[list[Annotation], int]:
    """Keep the first of annotation rows with the same series, centre and diameter.

    A copied row would count one nodule twice (each detection can match only
    one of them, so the copy reads as a miss).

    Returns:
        The distinct annotations in their order, and how many rows were dropped.
    """
    seen: set[tuple[str, Xyz, float]] = set()
    kept = []
    for annotation in annotations:
        key = (annotation.series_uid, annotation.center_xyz, annotation.diameter_mm)
        if key not in seen:
            seen.add(key)
            kept.append(annotation)
    return kept, len(annotations) - len(kept)


def positives_inside(rows: Iterable[tuple[str, Xyz]], annotations: Iterable[Annotation]) -> list[CandidateInfo]:
    """Positives for the ``(uid, centre)`` rows that lie inside an annotated nodule's radius.

    A row takes the diameter and malignancy of the nodule it is relatively
    closest to (distance / diameter). Rows exactly at a nodule's centre repeat
    the annotation and are dropped, as are rows inside no nodule.
    """
    by_uid: dict[str, list[Annotation]] = {}
    for a in annotations:
        if a.diameter_mm > 0:
            by_uid.setdefault(a.series_uid, []).append(a)
    out = []
    for uid, xyz in rows:
        found = by_uid.get(uid)
        if not found:
            continue
        centres = np.asarray([a.center_xyz for a in found], np.float64)
        relative = np.linalg.norm(centres - np.asarray(xyz, np.float64), axis=1) / np.asarray([a.diameter_mm for a in found])
        best = int(np.argmin(relative))
        if 0.0 < relative[best] < 0.5:
            a = found[best]
            out.append(CandidateInfo(True, True, bool(a.is_malignant), a.diameter_mm, uid, xyz))
    return out


def find_series_files(root: str | Path) -> dict[str, Path]:
    """Map series uid → ``.mhd`` path for every ``subset*/<uid>.mhd`` under ``root``.

    ``.mhd`` files directly in ``root`` are indexed too.
    """
    root = Path(root)
    found: dict[str, Path] = {}
    for mhd in sorted(root.glob("*.mhd")) + sorted(root.glob("subset*/*.mhd")):
        found[mhd.name[: -len(".mhd")]] = mhd
    return found


class LunaIndex:
    """Everything known about a LUNA16-format folder, restricted to series on disk.

    Use :meth:`open`. Attributes:
        root: The dataset folder.
        series_paths: uid → ``.mhd`` path.
        annotations: Annotated nodules (from ``annotations_with_malignancy.csv``
            when present, else ``annotations.csv``), series on disk only.
        excluded: ``annotations_excluded.csv`` findings (empty when absent).
        candidates: Positives from the annotations, then class-0 rows of
            ``candidates.csv``; nodules sorted by diameter, largest first (book order).
        has_malignancy: Whether malignancy labels were available.
        notes: What was corrected while indexing (duplicated annotation rows
            dropped), for the caller to show.
    """

    def __init__(
        self,
        root: Path,
        series_paths: dict[str, Path],
        annotations: list[Annotation],
        excluded: list[Annotation],
        candidates: list[CandidateInfo],
        has_malignancy: bool,
        notes: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.series_paths = series_paths
        self.annotations = annotations
        self.excluded = excluded
        self.candidates = candidates
        self.has_malignancy = has_malignancy
        self.notes = tuple(notes)

    @classmethod
    def open(
        cls,
        root: str | Path,
        *,
        require_candidates: bool = False,
        read_candidates: bool = True,
        candidates: str | Path | None = None,
        candidate_positives: bool = False,
    ) -> "LunaIndex":
        """Index a LUNA16-format folder.

        Args:
            root: The folder with ``subset*/`` and the CSV files.
            require_candidates: Refuse a folder without ``candidates.csv``.
            read_candidates: Read the negatives of ``candidates.csv`` (real LUNA16:
                ~551k rows). Evaluation needs only the annotations and passes False.
            candidates: Another candidates CSV to read instead of
                ``root/candidates.csv`` (e.g. LUNA16's ``candidates_V2.csv``, or one
                with mined hard negatives); it must exist.
            candidate_positives: Also make each class-1 row of the candidates
                file that lies inside an annotated nodule's radius a positive,
                carrying that nodule's diameter and malignancy (e.g. the detector
                centres written by ``mine-negatives --positives``). Rows at an
                annotation's own centre, and rows inside no annotation, are left out.

        Raises:
            DatasetError: not a folder, no series on disk, no annotation file, or
                (when required) no ``candidates.csv``.
            CsvFormatError: a CSV is malformed.
        """
        root = Path(root)
        if not root.is_dir():
            raise DatasetError("is not a folder", root)
        series_paths = find_series_files(root)
        if not series_paths:
            raise DatasetError("holds no series: expected subset*/<seriesuid>.mhd files (LUNA16 layout)", root)
        on_disk = set(series_paths)
        mal_path = root / "annotations_with_malignancy.csv"
        ann_path = root / "annotations.csv"
        if mal_path.exists():
            annotations = read_annotations(mal_path)
            has_malignancy = True
        elif ann_path.exists():
            annotations = read_annotations(ann_path)
            has_malignancy = False
        else:
            raise DatasetError("has neither annotations.csv nor annotations_with_malignancy.csv", root)
        annotations, dropped = drop_duplicate_annotations([a for a in annotations if a.series_uid in on_disk])
        notes = []
        if dropped:
            name = (mal_path if has_malignancy else ann_path).name
            notes.append(
                f"{name}: dropped {dropped} duplicated row(s) (same series, centre and diameter); "
                f"{len(annotations)} distinct nodules kept"
            )
        excl_path = root / "annotations_excluded.csv"
        excluded = (
            [a for a in read_annotations(excl_path, excluded=True) if a.series_uid in on_disk]
            if excl_path.exists()
            else []
        )
        cand_path = root / "candidates.csv" if candidates is None else Path(candidates)
        if candidates is not None and not cand_path.is_file():
            raise DatasetError("does not exist (the candidates file given)", cand_path)
        if require_candidates and not cand_path.exists():
            raise DatasetError("has no candidates.csv (needed to train the classifiers)", root)
        nodules = [
            CandidateInfo(True, True, bool(a.is_malignant), a.diameter_mm, a.series_uid, a.center_xyz)
            for a in annotations
        ]
        nodules.sort(key=lambda c: -c.diameter_mm)
        negatives = []
        positive_rows: list[tuple[str, Xyz]] = []
        if read_candidates and cand_path.exists():
            for uid, xyz, cls_ in iter_candidates(cand_path, on_disk):
                if cls_ == 0:
                    negatives.append(CandidateInfo(False, False, False, 0.0, uid, xyz))
                elif candidate_positives:
                    positive_rows.append((uid, xyz))
        if positive_rows:
            nodules = sorted(nodules + positives_inside(positive_rows, annotations), key=lambda c: -c.diameter_mm)
        return cls(root, series_paths, annotations, excluded, nodules + negatives, has_malignancy, tuple(notes))

    @property
    def series_uids(self) -> tuple[str, ...]:
        """Series on disk, sorted."""
        return tuple(sorted(self.series_paths))

    def split(self, val_stride: int = 10, test_stride: int = 0) -> SeriesSplit:
        """The project-wide series split (see :func:`split_series`)."""
        return split_series(self.series_paths, val_stride, test_stride)

    def candidates_in(self, uids: Iterable[str]) -> list[CandidateInfo]:
        """Candidates of the given series, in index order."""
        wanted = set(uids)
        return [c for c in self.candidates if c.series_uid in wanted]

    def annotations_for(self, uid: str) -> list[Annotation]:
        """Annotated nodules of one series."""
        return [a for a in self.annotations if a.series_uid == uid]

    def excluded_for(self, uid: str) -> list[Annotation]:
        """Excluded (irrelevant) findings of one series."""
        return [a for a in self.excluded if a.series_uid == uid]

    def path_for(self, uid: str) -> Path:
        """The ``.mhd`` file of a series."""
        try:
            return self.series_paths[uid]
        except KeyError:
            raise DatasetError(f"series {uid} is not on disk", self.root) from None

    def load(self, uid: str):  # -> CtVolume
        """Load one series as a :class:`~engine.io.ct.CtVolume`."""
        from engine.io.ct import load_ct

        return load_ct(self.path_for(uid))
