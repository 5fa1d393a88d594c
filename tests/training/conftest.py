"""Fixtures of the trainer tests: a tiny LUNA16-format dataset with known nodules."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

SHAPE = (36, 64, 64)
SPACING_XYZ = (1.0, 1.0, 2.0)


@dataclass(frozen=True)
class TinyDataset:
    """A written dataset and its truth.

    Args:
        root: The dataset folder.
        uids: Series uids, sorted.
        nodules: uid → list of ``(center_irc, diameter_mm, malignant)``.
    """

    root: Path
    uids: tuple[str, ...]
    nodules: dict[str, list[tuple[tuple[int, int, int], float, bool]]]


def _ball(shape: tuple[int, int, int], center: tuple[int, int, int], radius_irc: np.ndarray) -> np.ndarray:
    grids = np.ogrid[: shape[0], : shape[1], : shape[2]]
    distance = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, center, radius_irc))
    return distance <= 1.0


def write_tiny_dataset(root: Path, n_series: int = 6, seed: int = 0, negatives: int = 12) -> TinyDataset:
    """Write ``n_series`` small CTs (lung-like background, solid spheres as nodules) in LUNA16 layout.

    Every series has 1–2 nodules (diameter 6–14 mm; malignant when ≥ 10 mm),
    one class-1 candidate per nodule and ``negatives`` class-0 candidates at
    random lung points and at small bright "vessel" dots.
    """
    rng = np.random.default_rng(seed)
    (root / "subset0").mkdir(parents=True, exist_ok=True)
    spacing_irc = np.asarray(SPACING_XYZ[::-1])
    cand_rows, ann_rows, truth, uids = [], [], {}, []
    for s in range(n_series):
        uid = f"2.25.{1000 + 37 * seed + s}"
        uids.append(uid)
        hu = rng.normal(-850, 20, SHAPE).astype(np.float32)
        hu[:, :, :4] = 40.0  # a wall
        origin = np.array([-32.0, -40.0, -300.0 + 5 * s])
        nodules = []
        for _ in range(1 + s % 2):
            diameter = float(rng.uniform(6, 14))
            center = (int(rng.integers(8, SHAPE[0] - 8)), int(rng.integers(16, SHAPE[1] - 16)), int(rng.integers(16, SHAPE[2] - 16)))
            hu[_ball(SHAPE, center, diameter / 2 / spacing_irc)] = rng.normal(30, 10)
            nodules.append((center, diameter, diameter >= 10.0))
        for _ in range(negatives // 2):  # vessel-like dots: bright but thin along the slice axis
            center = (int(rng.integers(2, SHAPE[0] - 2)), int(rng.integers(6, SHAPE[1] - 6)), int(rng.integers(6, SHAPE[2] - 6)))
            hu[_ball(SHAPE, center, np.array([3.0, 1.5, 1.5]))] = 40.0
            cand_rows.append((uid, center, 0))
        for _ in range(negatives - negatives // 2):
            center = (int(rng.integers(0, SHAPE[0])), int(rng.integers(0, SHAPE[1])), int(rng.integers(0, SHAPE[2])))
            cand_rows.append((uid, center, 0))
        image = sitk.GetImageFromArray(np.clip(hu, -1024, 3000).astype(np.int16))
        image.SetSpacing(SPACING_XYZ)
        image.SetOrigin(tuple(origin))
        sitk.WriteImage(image, str(root / "subset0" / f"{uid}.mhd"))
        truth[uid] = nodules
        for center, diameter, malignant in nodules:
            xyz = origin + np.asarray(center[::-1]) * np.asarray(SPACING_XYZ)
            ann_rows.append((uid, *xyz, diameter, malignant))
            cand_rows.append((uid, center, 1))

    def xyz_of(uid: str, center: tuple[int, int, int]) -> np.ndarray:
        s = uids.index(uid)
        origin = np.array([-32.0, -40.0, -300.0 + 5 * s])
        return origin + np.asarray(center[::-1]) * np.asarray(SPACING_XYZ)

    with (root / "candidates.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "class"])
        for uid, center, label in cand_rows:
            writer.writerow([uid, *(f"{v:.3f}" for v in xyz_of(uid, center)), label])
    for name, with_mal in (("annotations.csv", False), ("annotations_with_malignancy.csv", True)):
        with (root / name).open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"] + (["mal_bool"] if with_mal else []))
            for uid, x, y, z, diameter, malignant in ann_rows:
                writer.writerow([uid, f"{x:.3f}", f"{y:.3f}", f"{z:.3f}", f"{diameter:.2f}"] + ([str(malignant)] if with_mal else []))
    return TinyDataset(root, tuple(sorted(uids)), truth)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> TinyDataset:
    """Six tiny series with 1–2 nodules each (validation = every 3rd series with ``--val-stride 3``)."""
    return write_tiny_dataset(tmp_path / "luna", n_series=6, seed=0)


@pytest.fixture(name="write_tiny_dataset")
def write_tiny_dataset_fixture():
    """Factory: ``write_tiny_dataset(root, n_series, seed, negatives)``."""
    return write_tiny_dataset
