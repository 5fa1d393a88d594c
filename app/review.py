"""The reader's review, kept per series so that it is never lost: verdicts, notes and measurements.

A review lives in a sidecar JSON file in the user data folder
(``<user data>/reviews/<series>.json``), one file per series uid. Verdicts and
notes belong to one detection: they are stored under a key made of the model
ids and the grouping settings (:func:`detection_key`), and by *position* (the
finding's LPS centre and diameter), because the detection itself is not saved
and its candidate ids change when it runs again. Measurements belong to the
series and are stored once.

:class:`ReviewStore` reads and writes the files (atomically, every write);
a file that cannot be read is set aside as ``<name>.corrupt-<time>`` with a
message, never overwritten. :class:`ReviewKeeper` binds a store to a
:class:`~app.state.ViewerState`: it restores the saved review when a series is
opened and when a detection with the same settings is shown (after a restart
too, matched by position), and saves on every change.

No Qt.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from app.findings import Mark, match_by_position
from app.state import EVENTS, ViewerState
from engine.detection.result import Candidate, DetectionResult
from engine.detection.settings import GroupingSettings
from engine.files import write_text_atomic
from engine.paths import user_data_dir

#: Version of the file format.
REVIEW_VERSION = 1


def review_folder() -> Path:
    """Where the review files live: ``<user data>/reviews``."""
    return user_data_dir() / "reviews"


def detection_key(result: DetectionResult) -> str:
    """The key of a detection's settings: model ids and grouping settings, as canonical JSON."""
    return json.dumps({"models": dict(result.model_ids), "grouping": result.grouping.as_dict()}, sort_keys=True)


def _current_key(key: Any) -> Any:
    """A stored key with its grouping written as :meth:`GroupingSettings.as_dict` writes it now
    (older files left the method out when it was the default); a key that is not one is kept as it is."""
    if not isinstance(key, dict) or not isinstance(key.get("grouping"), dict):
        return key
    try:
        grouping = GroupingSettings.from_dict(key["grouping"]).as_dict()
    except (TypeError, ValueError):
        return key
    return {**key, "grouping": grouping}


@dataclass(frozen=True)
class SavedFinding:
    """A verdict or note on one finding, by position.

    Args:
        center_xyz: The finding's centre, LPS mm.
        diameter_mm: Its diameter, mm (sets how far a match may lie).
        mark: ``"accepted"``, ``"rejected"`` or None.
        note: The reader's note ("" for none).
    """

    center_xyz: tuple[float, float, float]
    diameter_mm: float
    mark: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {"center_xyz": [round(float(v), 3) for v in self.center_xyz], "diameter_mm": round(float(self.diameter_mm), 3),
                "mark": self.mark, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SavedFinding:
        """The inverse of :meth:`to_dict`.

        Raises:
            ValueError: a field is missing or of the wrong kind.
        """
        try:
            xyz = tuple(float(v) for v in data["center_xyz"])
            mark = data.get("mark")
            if mark is not None:
                mark = Mark(mark).value
            if len(xyz) != 3:
                raise ValueError("center_xyz needs three numbers")
            return cls(xyz, float(data["diameter_mm"]), mark, str(data.get("note") or ""))  # type: ignore[arg-type]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"a saved finding is incomplete: {exc}") from exc


@dataclass
class SeriesReview:
    """Everything saved for one series.

    Args:
        series_uid: The series.
        detections: Saved findings by :func:`detection_key`.
        measurements: The measurements' ``to_dict()`` forms.
    """

    series_uid: str
    detections: dict[str, list[SavedFinding]] = field(default_factory=dict)
    measurements: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> str:
        """The file's text."""
        payload = {
            "version": REVIEW_VERSION,
            "series_uid": self.series_uid,
            "detections": [{"key": json.loads(key), "findings": [f.to_dict() for f in found]}
                           for key, found in self.detections.items()],
            "measurements": self.measurements,
        }
        return json.dumps(payload, indent=1)

    @classmethod
    def from_json(cls, text: str) -> SeriesReview:
        """Parse a file's text.

        Raises:
            ValueError: not JSON, or not a review.
        """
        data = json.loads(text)  # json.JSONDecodeError is a ValueError
        if not isinstance(data, dict) or data.get("version") != REVIEW_VERSION or "series_uid" not in data:
            raise ValueError("not a LungCAD review file of version 1")
        detections: dict[str, list[SavedFinding]] = {}
        for entry in data.get("detections", []):
            key = json.dumps(_current_key(entry["key"]), sort_keys=True)
            detections[key] = [SavedFinding.from_dict(f) for f in entry.get("findings", [])]
        measurements = data.get("measurements", [])
        if not isinstance(measurements, list) or not all(isinstance(m, dict) for m in measurements):
            raise ValueError("measurements must be a list of objects")
        return cls(str(data["series_uid"]), detections, list(measurements))


def saved_findings(candidates: Sequence[Candidate], marks: dict[int, Mark], notes: dict[int, str]) -> list[SavedFinding]:
    """The verdicts and notes on a result's candidates, by position (candidates without either are left out)."""
    saved = []
    for c in candidates:
        mark, note = marks.get(int(c.id)), notes.get(int(c.id), "")
        if mark is not None or note:
            saved.append(SavedFinding(tuple(float(v) for v in c.center_xyz), float(c.diameter_mm),  # type: ignore[arg-type]
                                      None if mark is None else Mark(mark).value, note))
    return saved


def match_saved(
    saved: Sequence[SavedFinding], candidates: Sequence[Candidate]
) -> tuple[dict[int, Mark], dict[int, str], list[SavedFinding]]:
    """Put saved verdicts and notes onto the candidates at the same positions.

    Args:
        saved: Verdicts and notes by position.
        candidates: The candidates of a new detection.

    Returns:
        ``(marks, notes, unmatched)``: marks and notes by candidate id, and the
        saved findings no candidate lies close enough to.
    """
    if not saved:
        return {}, {}, []
    xyz = np.array([s.center_xyz for s in saved], dtype=np.float64)
    radius = np.array([0.5 * s.diameter_mm for s in saved], dtype=np.float64)
    matched = match_by_position(xyz, radius, candidates)
    marks: dict[int, Mark] = {}
    notes: dict[int, str] = {}
    unmatched = []
    for s, j in zip(saved, matched):
        if j is None:
            unmatched.append(s)
            continue
        cid = int(candidates[j].id)
        if s.mark is not None:
            marks[cid] = Mark(s.mark)
        if s.note:
            notes[cid] = s.note
    return marks, notes, unmatched


class ReviewStore:
    """Reads and writes review files, one per series.

    Args:
        folder: Where the files are (default: :func:`review_folder`).
        notice: Called with a message when a file is set aside or cannot be written.
    """

    def __init__(self, folder: str | Path | None = None, notice: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else review_folder()
        self.notice = notice or (lambda _message: None)

    def path_for(self, series_uid: str) -> Path:
        """The review file of a series (a readable part of the uid and a hash of all of it)."""
        readable = re.sub(r"[^0-9A-Za-z._-]+", "_", series_uid)[-60:].strip("._") or "series"
        digest = hashlib.sha1(series_uid.encode("utf-8")).hexdigest()[:10]
        return self.folder / f"{readable}-{digest}.json"

    def load(self, series_uid: str) -> SeriesReview:
        """The saved review of a series (empty when none is saved).

        A file that cannot be read, is no review, or belongs to another series
        is renamed to ``<name>.corrupt-<time>`` and reported through ``notice``;
        an empty review is returned.
        """
        path = self.path_for(series_uid)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return SeriesReview(series_uid)
        except (OSError, UnicodeDecodeError) as exc:
            return self._set_aside(path, series_uid, str(exc))
        try:
            review = SeriesReview.from_json(text)
        except (ValueError, KeyError, TypeError) as exc:
            return self._set_aside(path, series_uid, str(exc))
        if review.series_uid != series_uid:
            return self._set_aside(path, series_uid, f"it belongs to series {review.series_uid}")
        return review

    def save(self, review: SeriesReview) -> Path:
        """Write a review atomically (the old file stays whole if the write fails).

        Raises:
            OSError: it could not be written.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        return write_text_atomic(self.path_for(review.series_uid), review.to_json())

    def _set_aside(self, path: Path, series_uid: str, reason: str) -> SeriesReview:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        aside = path.with_name(f"{path.name}.corrupt-{stamp}")
        n = 1
        while aside.exists():
            aside = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
            n += 1
        try:
            path.rename(aside)
        except OSError as exc:
            self.notice(f"The saved review {path} cannot be read ({reason}) nor set aside ({exc}); "
                        "this session's review will not be saved over it.")
            raise
        self.notice(f"The saved review of this series could not be read ({reason}). It was kept as {aside.name}; "
                    "a new review starts.")
        return SeriesReview(series_uid)


class ReviewKeeper:
    """Keeps the state's review in a :class:`ReviewStore`: restored on open and on Detect, saved on every change.

    Args:
        state: The viewer state.
        store: Where reviews are kept.
    """

    def __init__(self, state: ViewerState, store: ReviewStore) -> None:
        self.state = state
        self.store = store
        self.review: SeriesReview | None = None
        self._restored: set[str] = set()
        self._last_text = ""
        self._writable = True
        self._unsubscribe = [
            state.subscribe("volume", self._on_volume),
            state.subscribe("result", self._on_result),
            state.subscribe("findings", self.save),
        ]
        if "measurements" in EVENTS:  # the ruler's measurements are part of the review
            self._unsubscribe.append(state.subscribe("measurements", self.save))
        self._on_volume()

    def close(self) -> None:
        """Stop following the state."""
        for off in self._unsubscribe:
            off()

    def _on_volume(self) -> None:
        ct = self.state.volume
        self._restored = set()
        self._last_text = ""
        self.review = None
        self._writable = True
        if ct is None:
            return
        try:
            self.review = self.store.load(ct.series_uid)
        except OSError:
            self._writable = False  # unreadable and immovable: never write over it
            self.review = SeriesReview(ct.series_uid)
        self._last_text = self.review.to_json()
        self._restore_measurements()

    def _restore_measurements(self) -> None:
        if self.review is None or not self.review.measurements or not hasattr(self.state, "set_measurements"):
            return
        from app.measurements import Measurement  # written alongside; only needed when measurements were saved

        try:
            restored = [Measurement.from_dict(d) for d in self.review.measurements]
        except (KeyError, TypeError, ValueError) as exc:
            self.store.notice(f"Saved measurements of this series could not be restored: {exc}")
            return
        self.state.set_measurements(restored)

    def _on_result(self) -> None:
        result = self.state.result
        if result is None or self.review is None:
            return
        key = detection_key(result)
        if key in self._restored:
            return
        self._restored.add(key)
        marks, notes, _unmatched = match_saved(self.review.detections.get(key, []), result.candidates)
        self.state.restore_review(marks, notes)

    def save(self) -> None:
        """Write the review if it changed since the last write."""
        ct, result = self.state.volume, self.state.result
        if ct is None or self.review is None or not self._writable:
            return
        if result is not None:
            key = detection_key(result)
            if key not in self._restored:
                return  # this detection's saved review is not restored yet: do not write over it
            self.review.detections[key] = saved_findings(result.candidates, self.state.marks, self.state.notes)
            if not self.review.detections[key]:
                del self.review.detections[key]
        measurements = getattr(self.state, "measurements", None)
        if measurements is not None:
            self.review.measurements = [m.to_dict() for m in measurements]
        text = self.review.to_json()
        if text == self._last_text:
            return
        try:
            self.store.save(self.review)
        except OSError as exc:
            self.store.notice(f"The review could not be saved to {self.store.path_for(ct.series_uid)}: {exc}")
            return
        self._last_text = text
