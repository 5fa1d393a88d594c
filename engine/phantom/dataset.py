"""Write phantom series as a LUNA16-format dataset folder.

Layout (SPEC §1.2), exactly what :class:`engine.luna.LunaIndex` reads::

    OUT/subset0 .. subset{k-1}/<seriesuid>.mhd + .raw   (int16 HU, via SimpleITK)
    OUT/candidates.csv                    seriesuid,coordX,coordY,coordZ,class
    OUT/annotations.csv                   seriesuid,coordX,coordY,coordZ,diameter_mm
    OUT/annotations_with_malignancy.csv   ... mal_bool,mal_details,bbox*,len_mal_details
    OUT/annotations_excluded.csv          seriesuid,coordX,coordY,coordZ,diameter_mm
    OUT/annotations_attributes.csv        seriesuid,coordX,coordY,coordZ,diameter_mm,kind,location
    OUT/seriesuids.csv                    one uid per line

Every file is written to a temporary name and moved into place, so an
interrupted run never leaves a truncated volume that looks complete: a
``.raw`` is moved before its ``.mhd``, and the CSV files are written last.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from engine.io.volume import CtVolume
from engine.errors import DatasetError
from engine.files import atomic_open, move_into_place
from engine.phantom.distributions import KINDS, LOCATIONS
from engine.phantom.series import generate_series
from engine.phantom.truth import PhantomTruth

Progress = Callable[[float, str], None]

#: Most subsets, as in LUNA16 (subset0..subset9).
MAX_SUBSETS = 10

MALIGNANCY_HEADER = (
    "seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "mal_bool", "mal_details",
    "bboxLowX", "bboxLowY", "bboxLowZ", "bboxHighX", "bboxHighY", "bboxHighZ", "len_mal_details",
)


#: The dataset's CSV files and their header rows (``None``: no header).
CSV_HEADERS: dict[str, tuple[str, ...] | None] = {
    "annotations.csv": ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"),
    "annotations_with_malignancy.csv": MALIGNANCY_HEADER,
    "annotations_excluded.csv": ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"),
    "candidates.csv": ("seriesuid", "coordX", "coordY", "coordZ", "class"),
    "seriesuids.csv": None,
    # not LUNA16's: each nodule's kind and location, for ``evaluate``'s sensitivity by kind and location
    "annotations_attributes.csv": ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "kind", "location"),
}
#: ``annotations_attributes.csv``'s name for each :attr:`PhantomNodule.location` (a nodule in the parenchyma is "free").
LOCATION_NAMES = {"parenchyma": "free", "juxtapleural": "juxtapleural", "juxtavascular": "juxtavascular"}


@dataclass(frozen=True)
class DatasetSummary:
    """What :func:`write_dataset` wrote.

    Args:
        root: The dataset folder.
        series_uids: uids of the written series, in generation order.
        series_seeds: The phantom seed of each series.
        n_nodules: Reference nodules over all series.
        n_malignant: Malignant nodules.
        n_candidates: Rows of ``candidates.csv``.
        n_positive_candidates: Its class-1 rows.
        n_excluded: Rows of ``annotations_excluded.csv``.
    """

    root: Path
    series_uids: tuple[str, ...]
    series_seeds: tuple[int, ...]
    n_nodules: int
    n_malignant: int
    n_candidates: int
    n_positive_candidates: int
    n_excluded: int


@dataclass(frozen=True)
class NoduleMix:
    """Nodules forced into every series, to enrich a training set in rare kinds.

    Each series gets ``per_series`` nodules; their kinds cycle through
    ``kinds`` (continuing from series to series); diameters are drawn
    log-uniformly from ``diameter_mm`` with a generator seeded by the series
    seed (or from the real LUNA16 histogram when ``diameter_mm`` is ``None``).
    Margin, position and readers' ratings are drawn as usual.

    Args:
        kinds: Nodule kinds, each one of ``solid``, ``part-solid``, ``ground-glass``.
        per_series: Nodules per series, ≥ 1.
        diameter_mm: ``(low, high)`` diameter range in mm (3–32), or ``None``.
        locations: Locations cycled through like ``kinds`` (``parenchyma``,
            ``juxtapleural``, ``juxtavascular``; e.g. to enrich a training set
            in nodules touching the pleura or a vessel), or ``None`` to draw
            them as usual.

    Raises:
        ValueError: unknown kind or location, empty kinds, bad count or range.
    """

    kinds: tuple[str, ...]
    per_series: int = 2
    diameter_mm: tuple[float, float] | None = None
    locations: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if not self.kinds:
            raise ValueError("a nodule mix needs at least one kind")
        unknown = [k for k in self.kinds if k not in KINDS]
        if unknown:
            raise ValueError(f"unknown nodule kind(s) {', '.join(unknown)}; allowed: {', '.join(KINDS)}")
        if self.locations is not None:
            wrong = [w for w in self.locations if w not in LOCATIONS] or ([] if self.locations else ["(none)"])
            if wrong:
                raise ValueError(f"unknown nodule location(s) {', '.join(wrong)}; allowed: {', '.join(LOCATIONS)}")
        if self.per_series < 1:
            raise ValueError(f"nodules per series must be at least 1, got {self.per_series}")
        if self.diameter_mm is not None:
            low, high = self.diameter_mm
            if not 3.0 <= low <= high <= 32.0:
                raise ValueError(f"nodule diameters must satisfy 3 <= low <= high <= 32 mm, got {low}-{high}")

    def requests(self, index: int, series_seed: int) -> list[dict[str, Any]]:
        """The nodule overrides of the ``index``-th series (phantom seed ``series_seed``)."""
        rng = np.random.default_rng([int(series_seed), 0x0D1E])
        out: list[dict[str, Any]] = []
        for j in range(self.per_series):
            n = index * self.per_series + j
            request: dict[str, Any] = {"kind": self.kinds[n % len(self.kinds)]}
            if self.locations:
                request["location"] = self.locations[n % len(self.locations)]
            if self.diameter_mm is not None:
                low, high = np.log(self.diameter_mm)
                request["diameter_mm"] = round(float(np.exp(rng.uniform(low, high))), 2)
            out.append(request)
        return out


def series_seeds(seed: int, n_series: int) -> list[int]:
    """The phantom seeds of the ``n_series`` series of dataset ``seed`` (distinct 32-bit integers)."""
    out: list[int] = []
    i = 0
    while len(out) < n_series:
        value = int(np.random.SeedSequence([int(seed), i, 0xDA7A]).generate_state(1)[0])
        if value not in out:
            out.append(value)
        i += 1
    return out


def write_mhd(ct: CtVolume, folder: Path) -> Path:
    """Write ``ct`` as ``folder/<uid>.mhd`` + ``.raw`` (uncompressed int16), atomically.

    Returns:
        The ``.mhd`` path.

    Raises:
        DatasetError: the files cannot be written.
    """
    import SimpleITK as sitk

    folder.mkdir(parents=True, exist_ok=True)
    uid = ct.series_uid
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{uid[:24]}-", dir=folder))
    try:
        image = sitk.GetImageFromArray(ct.hu)
        image.SetOrigin(ct.geometry.origin_xyz)
        image.SetSpacing(ct.geometry.spacing_xyz)
        image.SetDirection(ct.geometry.direction)
        try:
            sitk.WriteImage(image, str(tmp / f"{uid}.mhd"), useCompression=False)
        except RuntimeError as exc:
            raise DatasetError(f"cannot write series {uid} ({str(exc).strip().splitlines()[-1]})", folder) from None
        move_into_place(tmp / f"{uid}.raw", folder / f"{uid}.raw")  # the data first: a header never points at nothing
        move_into_place(tmp / f"{uid}.mhd", folder / f"{uid}.mhd")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder / f"{uid}.mhd"


def _write_csv(path: Path, header: tuple[str, ...] | None, rows: Iterable[Iterable[object]]) -> None:
    with atomic_open(path) as handle:
        writer = csv.writer(handle)
        if header:
            writer.writerow(header)
        writer.writerows(rows)


def _num(v: float) -> str:
    return repr(float(v))


def _existing_rows(path: Path, header: bool, drop_uids: set[str]) -> list[list[str]]:
    """Rows of an existing dataset CSV whose series is not in ``drop_uids`` (none when it is missing)."""
    if not path.is_file():
        return []
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = [r for r in csv.reader(handle) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"cannot read it to append to the dataset ({exc})", path) from None
    return [r for r in rows[1 if header else 0:] if r[0] not in drop_uids]


def write_csvs(root: Path, truths: list[PhantomTruth], append: bool = False) -> None:
    """Write the six CSV files of a dataset from the series' truths (atomically, each).

    With ``append`` the rows of the folder's existing CSV files are kept,
    except those of the series being written, which are replaced.
    """
    ann, mal, excl, cand, attrs = [], [], [], [], []
    for t in truths:
        for n in t.nodules:
            xyz = [_num(v) for v in n.center_xyz]
            ann.append([t.series_uid, *xyz, _num(n.diameter_mm)])
            attrs.append([t.series_uid, *xyz, _num(n.diameter_mm), n.kind, LOCATION_NAMES.get(n.location, n.location)])
            mal.append([
                t.series_uid, *xyz, _num(n.diameter_mm), str(n.is_malignant), str(list(n.ratings)),
                *[_num(v) for v in n.bbox_low_xyz], *[_num(v) for v in n.bbox_high_xyz], len(n.ratings),
            ])
        for f in t.excluded:
            excl.append([t.series_uid, *[_num(v) for v in f.center_xyz], _num(f.diameter_mm)])
        for c in t.candidates:
            cand.append([t.series_uid, *[_num(v) for v in c.center_xyz], c.label])
    new = {t.series_uid for t in truths}
    rows = {"annotations.csv": ann, "annotations_with_malignancy.csv": mal, "annotations_excluded.csv": excl,
            "candidates.csv": cand, "seriesuids.csv": [[t.series_uid] for t in truths],
            "annotations_attributes.csv": attrs}
    if append:  # read everything first, so that a bad file leaves the dataset as it was
        kept = {name: _existing_rows(root / name, header is not None, new) for name, header in CSV_HEADERS.items()}
        rows = {name: kept[name] + rows[name] for name in CSV_HEADERS}
    for name, header in CSV_HEADERS.items():
        _write_csv(root / name, header, rows[name])


def write_seeds(
    out_dir: str | Path,
    seeds: list[int],
    preset: str = "standard",
    progress: Progress | None = None,
    *,
    mix: NoduleMix | None = None,
    append: bool = False,
) -> DatasetSummary:
    """Write the phantom series of the given seeds as a LUNA16-format dataset.

    Args:
        out_dir: The dataset folder (created; existing series and CSVs with the
            same names are replaced).
        seeds: One phantom seed per series.
        preset: ``"standard"`` or ``"small"``.
        progress: ``progress(fraction, text)`` callable.
        mix: Nodules to force into every series (default: drawn as in LUNA16).
        append: Add the series to the dataset already in ``out_dir``: its
            CSV rows are kept and the new series are spread over its
            ``subset*`` folders after the ones it has.

    Returns:
        A :class:`DatasetSummary`.

    Raises:
        DatasetError: the folder cannot be created or written.
        ValueError: unknown preset or no seeds.
    """
    if not seeds:
        raise ValueError("a dataset needs at least one series")
    root = Path(out_dir)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot create the dataset folder ({exc.strerror})", root) from None
    n_subsets, offset = min(MAX_SUBSETS, len(seeds)), 0
    if append:
        for name, header in CSV_HEADERS.items():  # fail before minutes of generation, not after
            _existing_rows(root / name, header is not None, set())
        existing = [p for p in root.glob("subset*") if p.is_dir()]
        if existing:
            n_subsets = len(existing)
            offset = len(_existing_rows(root / "seriesuids.csv", False, set()))
    truths: list[PhantomTruth] = []
    report = progress or (lambda fraction, text: None)
    total = len(seeds)
    for i, seed in enumerate(seeds):
        label = f"series {i + 1}/{total}"

        def inner(fraction: float, text: str, i: int = i, label: str = label) -> None:
            report((i + 0.95 * fraction) / total, f"{label}: {text}")

        overrides = {"nodules": mix.requests(i, seed)} if mix is not None else {}
        ct, truth = generate_series(seed, preset, progress=inner, **overrides)
        report((i + 0.95) / total, f"{label}: writing")
        write_mhd(ct, root / f"subset{(offset + i) % n_subsets}")
        truths.append(PhantomTruth(truth.seed, truth.preset, truth.series_uid, truth.nodules, truth.excluded,
                                   truth.candidates, None, truth.noise_sigma, truth.flipped_xyz))
        del ct, truth
    report(0.999, "writing CSV files")
    write_csvs(root, truths, append=append)
    report(1.0, "done")
    return DatasetSummary(
        root=root,
        series_uids=tuple(t.series_uid for t in truths),
        series_seeds=tuple(int(s) for s in seeds),
        n_nodules=sum(len(t.nodules) for t in truths),
        n_malignant=sum(t.malignant_count for t in truths),
        n_candidates=sum(len(t.candidates) for t in truths),
        n_positive_candidates=sum(c.label for t in truths for c in t.candidates),
        n_excluded=sum(len(t.excluded) for t in truths),
    )


def write_dataset(
    out_dir: str | Path,
    n_series: int,
    seed: int,
    preset: str = "standard",
    progress: Progress | None = None,
    *,
    mix: NoduleMix | None = None,
    append: bool = False,
) -> DatasetSummary:
    """Generate ``n_series`` phantoms from dataset ``seed`` and write them in LUNA16 layout.

    Args:
        out_dir: The dataset folder.
        n_series: Number of series (≥ 1); they go to ``subset0..subset{min(n,10)-1}`` in turn.
        seed: Dataset seed; series seeds are derived from it (:func:`series_seeds`).
        preset: ``"standard"`` or ``"small"``.
        progress: ``progress(fraction, text)`` callable.
        mix, append: See :func:`write_seeds`.

    Returns:
        A :class:`DatasetSummary`.

    Raises:
        DatasetError, ValueError: see :func:`write_seeds`.
    """
    if n_series < 1:
        raise ValueError(f"n_series must be at least 1, got {n_series}")
    return write_seeds(out_dir, series_seeds(seed, n_series), preset, progress, mix=mix, append=append)
