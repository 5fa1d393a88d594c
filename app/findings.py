"""Findings from a detection result: threshold classes, review marks and marker geometry.

Pure functions, no Qt. The engine returns every candidate with ``p_nodule`` and
``p_malignant``; the viewer decides what to show with three thresholds that
move without re-running detection:

* a *nodule* has ``p_nodule >= nodule``;
* a *near miss* has ``nodule - near_miss_band <= p_nodule < nodule``;
* either is *malignant* when ``p_malignant >= malignancy``.

One lesion is one row: a shown candidate whose centre lies inside a bigger
shown candidate's radius is a *fragment* of it (the segmentation split one
lesion into pieces) and is listed with it, not as a row of its own
(:func:`group_fragments`). Rows are numbered 1…N by ``p_nodule`` for people;
the candidate ids stay the keys for selection, marks and exports.

Markers are circles in screen mm (see :mod:`app.planes`), drawn on every slice
that a candidate's bounding box spans, shrinking away from its centre like the
cross-section of a sphere.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum
from typing import Callable, Mapping, Sequence

import numpy as np

from app.planes import PlaneLayout
from engine.detection.result import Candidate


#: Gap between a finding's edge and its circle, in mm (at least; 30 % of the radius for large ones).
MARKER_MARGIN_MM = 2.5
#: Smallest circle drawn, radius in mm.
MIN_MARKER_RADIUS_MM = 4.0


class FindingClass(IntEnum):
    """How a candidate is shown at the current thresholds."""

    HIDDEN = 0
    NEAR_MISS = 1
    NODULE = 2


class Mark(str, Enum):
    """A reader's verdict on a finding."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Thresholds:
    """The viewer's display thresholds (probabilities in [0, 1]).

    Args:
        nodule: ``p_nodule`` from which a candidate is a nodule.
        near_miss_band: How far below ``nodule`` a candidate still shows, as a near miss.
        malignancy: ``p_malignant`` from which a finding is drawn as malignant.
    """

    nodule: float = 0.5
    near_miss_band: float = 0.2
    malignancy: float = 0.5

    def __post_init__(self) -> None:
        for name in ("nodule", "near_miss_band", "malignancy"):
            object.__setattr__(self, name, float(np.clip(getattr(self, name), 0.0, 1.0)))


@dataclass(frozen=True)
class Finding:
    """A candidate shown at the current thresholds.

    Args:
        candidate: The engine's candidate (the biggest piece of its lesion).
        klass: Nodule or near miss.
        malignant: ``p_malignant`` reaches the malignancy threshold.
        mark: The reader's verdict, if any.
        number: Display number, 1…N by ``p_nodule`` (0 when not numbered).
        fragments: Smaller shown candidates whose centres lie inside this one's
            radius: pieces of the same lesion, listed with it.
        location: Where it lies in the lungs, e.g. ``"R upper"`` (see :mod:`app.location`).
        note: The reader's free-text note.
    """

    candidate: Candidate
    klass: FindingClass
    malignant: bool
    mark: Mark | None = None
    number: int = 0
    fragments: tuple[Candidate, ...] = ()
    location: str = ""
    note: str = ""

    @property
    def id(self) -> int:
        """The candidate's id."""
        return int(self.candidate.id)

    @property
    def member_ids(self) -> tuple[int, ...]:
        """The candidate's id followed by its fragments' ids."""
        return (self.id, *(int(c.id) for c in self.fragments))


@dataclass(frozen=True)
class FindingSet:
    """The findings at one set of thresholds.

    Args:
        findings: Nodules and near misses, highest ``p_nodule`` first.
        n_candidates: All candidates of the result, shown or not.
    """

    findings: tuple[Finding, ...] = ()
    n_candidates: int = 0

    @property
    def n_nodules(self) -> int:
        """Findings at or above the nodule threshold."""
        return sum(1 for f in self.findings if f.klass == FindingClass.NODULE)

    @property
    def n_malignant(self) -> int:
        """Nodules (not near misses) drawn as malignant."""
        return sum(1 for f in self.findings if f.klass == FindingClass.NODULE and f.malignant)

    @property
    def n_near_misses(self) -> int:
        """Findings in the near-miss band."""
        return sum(1 for f in self.findings if f.klass == FindingClass.NEAR_MISS)

    @property
    def n_fragments(self) -> int:
        """Shown candidates folded into a bigger one's row."""
        return sum(len(f.fragments) for f in self.findings)

    def by_id(self, candidate_id: int) -> Finding | None:
        """The finding with that candidate id (or with a fragment of that id), or None when it is not shown."""
        for f in self.findings:
            if f.id == candidate_id:
                return f
        for f in self.findings:
            if candidate_id in f.member_ids:
                return f
        return None

    def ids(self) -> list[int]:
        """Candidate ids in display order."""
        return [f.id for f in self.findings]


def group_fragments(candidates: Sequence[Candidate]) -> list[tuple[Candidate, tuple[Candidate, ...]]]:
    """Fold candidates whose centres lie inside a bigger candidate's radius into it.

    Biggest first, each candidate either starts a lesion or, when its centre
    lies within half the diameter of a lesion already started, joins the
    nearest such lesion as a fragment.

    Args:
        candidates: Candidates to group (e.g. those shown at the thresholds).

    Returns:
        ``(lesion, fragments)`` pairs, biggest lesion first; every candidate
        appears exactly once.
    """
    order = sorted(candidates, key=lambda c: (-float(c.diameter_mm), int(c.id)))
    xyz = np.array([c.center_xyz for c in order], dtype=np.float64).reshape(-1, 3)
    lesion_xyz = np.empty_like(xyz)
    lesion_radius = np.empty(len(order), dtype=np.float64)
    lesions: list[tuple[Candidate, list[Candidate]]] = []
    for k, c in enumerate(order):
        n = len(lesions)
        if n:
            distance = np.linalg.norm(lesion_xyz[:n] - xyz[k], axis=1)
            inside = np.flatnonzero(distance <= lesion_radius[:n])
            if inside.size:
                lesions[int(inside[np.argmin(distance[inside])])][1].append(c)
                continue
        lesion_xyz[n] = xyz[k]
        lesion_radius[n] = 0.5 * float(c.diameter_mm)
        lesions.append((c, []))
    return [(lesion, tuple(fragments)) for lesion, fragments in lesions]


def classify(
    candidates: Sequence[Candidate],
    thresholds: Thresholds,
    marks: Mapping[int, Mark] | None = None,
    *,
    notes: Mapping[int, str] | None = None,
    locate: Callable[[Candidate], str] | None = None,
) -> FindingSet:
    """Apply the display thresholds to a result's candidates, one finding per lesion.

    Args:
        candidates: All candidates of a detection result.
        thresholds: Nodule threshold, near-miss band and malignancy threshold.
        marks: Reader verdicts by candidate id.
        notes: Reader notes by candidate id.
        locate: Names where a candidate lies (``"R upper"``); None leaves ``location`` empty.

    Returns:
        Nodules and near misses, fragments folded into their lesion
        (:func:`group_fragments`), sorted by ``p_nodule`` (highest first, ties
        by id) and numbered 1…N in that order.
    """
    marks = marks or {}
    notes = notes or {}
    if not candidates:
        return FindingSet((), 0)
    p_nod = np.array([c.p_nodule for c in candidates], dtype=np.float64)
    p_mal = np.array([c.p_malignant for c in candidates], dtype=np.float64)
    klass = np.where(
        p_nod >= thresholds.nodule,
        FindingClass.NODULE,
        np.where(p_nod >= thresholds.nodule - thresholds.near_miss_band, FindingClass.NEAR_MISS, FindingClass.HIDDEN),
    )
    if thresholds.near_miss_band <= 0:
        klass[klass == FindingClass.NEAR_MISS] = FindingClass.HIDDEN
    position = {id(c): k for k, c in enumerate(candidates)}
    shown = [candidates[k] for k in np.flatnonzero(klass != FindingClass.HIDDEN)]
    lesions = sorted(group_fragments(shown), key=lambda pair: (-float(pair[0].p_nodule), int(pair[0].id)))
    findings = []
    for number, (c, fragments) in enumerate(lesions, start=1):
        k = position[id(c)]
        findings.append(
            Finding(
                candidate=c,
                klass=FindingClass(int(klass[k])),
                malignant=bool(p_mal[k] >= thresholds.malignancy),
                mark=marks.get(int(c.id)),
                number=number,
                fragments=fragments,
                location=locate(c) if locate is not None else "",
                note=notes.get(int(c.id), ""),
            )
        )
    return FindingSet(tuple(findings), len(candidates))


def slice_span(candidate: Candidate, axis: int, spacing_mm: float) -> tuple[int, int]:
    """The slices (inclusive) along an array axis that a candidate spans.

    Uses the candidate's bounding box (``hi`` exclusive, as the engine's
    ``Candidate.bbox_irc``); without one, the centre plus and minus half the
    diameter.

    Args:
        candidate: The candidate.
        axis: Array axis (0 index, 1 row, 2 col).
        spacing_mm: Voxel size along that axis, for the fallback.

    Returns:
        ``(first, last)`` slice indices, ``first <= last``.
    """
    bbox = candidate.bbox_irc
    if bbox is not None:
        lo, hi = bbox
        return int(lo[axis]), int(max(lo[axis], hi[axis] - 1))
    centre = float(candidate.center_irc[axis])
    half = 0.5 * float(candidate.diameter_mm) / spacing_mm
    return int(np.floor(centre - half + 0.5)), int(np.floor(centre + half + 0.5))


def marker_radius_mm(nodule_radius_mm: np.ndarray | float, distance_mm: np.ndarray | float) -> np.ndarray:
    """Radius of the circle drawn around a finding on a slice ``distance_mm`` from its centre.

    The circle follows a sphere's cross-section (never below 60 % of the
    nodule radius, so it stays visible at the ends of its span) and adds a
    margin so the circle surrounds the nodule instead of covering its edge.

    Args:
        nodule_radius_mm: Half the finding's diameter, in mm.
        distance_mm: Distance of the slice from the finding's centre along the
            slice normal, in mm.

    Returns:
        Circle radius in mm (float64, broadcast shape), at least
        :data:`MIN_MARKER_RADIUS_MM` so small findings stay visible zoomed out.
    """
    r = np.asarray(nodule_radius_mm, dtype=np.float64)
    d = np.asarray(distance_mm, dtype=np.float64)
    section = np.sqrt(np.maximum(r * r - d * d, 0.0))
    section = np.maximum(section, 0.6 * r)
    return np.maximum(section + np.maximum(MARKER_MARGIN_MM, 0.3 * r), MIN_MARKER_RADIUS_MM)


@dataclass(frozen=True)
class PlaneMarkers:
    """Everything needed to draw a set of findings on one plane, as arrays.

    Args:
        index: Position of each marker's finding in the finding tuple it came from.
        u_mm, v_mm: Marker centres in screen mm.
        first, last: Slice span (inclusive) along the plane's slice axis.
        center_slice: Continuous slice coordinate of the centre.
        radius_mm: Nodule radius (half the diameter) in mm.
        spacing_slice: Slice spacing of the plane in mm.
    """

    index: np.ndarray
    u_mm: np.ndarray
    v_mm: np.ndarray
    first: np.ndarray
    last: np.ndarray
    center_slice: np.ndarray
    radius_mm: np.ndarray
    spacing_slice: float

    def on_slice(self, slice_index: int) -> tuple[np.ndarray, np.ndarray]:
        """Markers on one slice.

        Returns:
            ``(positions, circle_radius_mm)``: indices into :attr:`index` of the
            markers the slice cuts, and their circle radii in mm.
        """
        hit = np.flatnonzero((self.first <= slice_index) & (slice_index <= self.last))
        distance = np.abs(slice_index - self.center_slice[hit]) * self.spacing_slice
        return hit, marker_radius_mm(self.radius_mm[hit], distance)


def plane_markers(findings: Sequence[Finding], layout: PlaneLayout) -> PlaneMarkers:
    """Marker geometry of findings on one plane (computed once per threshold change).

    Args:
        findings: The findings to draw.
        layout: The plane's layout.

    Returns:
        Arrays of positions, spans and radii, one entry per finding.
    """
    n = len(findings)
    if n == 0:
        empty_f = np.zeros(0, dtype=np.float64)
        empty_i = np.zeros(0, dtype=np.int64)
        return PlaneMarkers(empty_i, empty_f, empty_f, empty_i, empty_i, empty_f, empty_f, layout.spacing_slice)
    centres = np.array([f.candidate.center_irc for f in findings], dtype=np.float64)
    uv = layout.to_screen(centres)
    spans = np.array(
        [slice_span(f.candidate, layout.slice_axis, layout.spacing_slice) for f in findings], dtype=np.int64
    )
    return PlaneMarkers(
        index=np.arange(n, dtype=np.int64),
        u_mm=uv[:, 0],
        v_mm=uv[:, 1],
        first=spans[:, 0],
        last=spans[:, 1],
        center_slice=centres[:, layout.slice_axis],
        radius_mm=np.array([0.5 * float(f.candidate.diameter_mm) for f in findings], dtype=np.float64),
        spacing_slice=layout.spacing_slice,
    )


def match_by_position(
    old_xyz: np.ndarray, old_radius_mm: np.ndarray, new: Sequence[Candidate], min_distance_mm: float = 3.0
) -> list[int | None]:
    """Match earlier lesion positions to new candidates, one to one, nearest first.

    An old position matches the nearest free new candidate whose centre lies
    within its radius (at least ``min_distance_mm``).

    Args:
        old_xyz: ``(N, 3)`` earlier centres, LPS mm.
        old_radius_mm: ``(N,)`` earlier radii (half the diameter), mm.
        new: The new candidates.
        min_distance_mm: Smallest match distance, for tiny findings.

    Returns:
        Per old position, the index into ``new`` it matched, or None.
    """
    old_xyz = np.asarray(old_xyz, dtype=np.float64).reshape(-1, 3)
    matched: list[int | None] = [None] * len(old_xyz)
    if len(old_xyz) == 0 or not new:
        return matched
    new_xyz = np.array([c.center_xyz for c in new], dtype=np.float64)
    distance = np.linalg.norm(old_xyz[:, None, :] - new_xyz[None, :, :], axis=2)
    reach = np.maximum(np.asarray(old_radius_mm, dtype=np.float64).reshape(-1), min_distance_mm)
    used: set[int] = set()
    for flat in np.argsort(distance, axis=None, kind="stable"):
        i, j = divmod(int(flat), len(new))
        if matched[i] is None and j not in used and distance[i, j] <= reach[i]:
            matched[i] = j
            used.add(j)
    return matched


def carry_marks(
    old: Sequence[Candidate], new: Sequence[Candidate], marks: Mapping[int, Mark]
) -> dict[int, Mark]:
    """Move reader marks onto the candidates of a re-grouped or re-detected result.

    Re-grouping renumbers candidates; a mark follows to the nearest new
    candidate whose centre lies within the old candidate's radius (at least
    3 mm), one mark per new candidate (:func:`match_by_position`).

    Args:
        old: Candidates the marks refer to.
        new: Candidates after re-grouping.
        marks: Marks by old candidate id.

    Returns:
        Marks by new candidate id (marks with no close candidate are dropped).
    """
    return carry_by_position(old, new, marks)


def carry_by_position(old: Sequence[Candidate], new: Sequence[Candidate], values: Mapping[int, object]) -> dict:
    """Move any per-candidate values (marks, notes) from ``old`` candidates to ``new`` ones by position.

    Returns:
        Values by new candidate id; values of unknown or unmatched old ids are dropped.
    """
    by_id = {int(c.id): c for c in old}
    known = [(int(k), v) for k, v in values.items() if int(k) in by_id]
    if not known or not new:
        return {}
    xyz = np.array([by_id[k].center_xyz for k, _ in known], dtype=np.float64)
    radius = np.array([0.5 * float(by_id[k].diameter_mm) for k, _ in known], dtype=np.float64)
    matched = match_by_position(xyz, radius, new)
    return {int(new[j].id): v for (_, v), j in zip(known, matched) if j is not None}
