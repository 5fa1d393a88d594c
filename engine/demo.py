"""The built-in demo series: one standard phantom, generated on first use, reused afterwards.

The app's "Load demo series" and ``make run`` open it, so a fresh machine
shows a chest CT without any download. It is written into the per-user data
folder (:func:`engine.paths.demo_dir`) as a one-series LUNA16-format dataset —
``subset0/<uid>.mhd`` plus the CSV files — so evaluation can run on it too.

Generation goes to a temporary folder that is renamed into place only when
complete (the rename is atomic), so an interrupted first start never leaves a
half-written series that a later start would reuse.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Callable

from engine.errors import CorruptFileError, DatasetError, FileMissingError
from engine.files import replace_directory
from engine.io.metaimage import check_mhd_header
from engine.paths import demo_dir
from engine.phantom.dataset import write_seeds
from engine.phantom.series import PHANTOM_VERSION, plan_series, series_uid, truth_of
from engine.phantom.truth import PhantomTruth

#: Seed of the demo series (512×512×288, 1.25 mm slices): a malignant spiculated
#: 12 mm nodule, a benign round 9 mm one and a 17 mm ground-glass nodule touching
#: a vessel. ``tests/engine/test_demo.py`` checks this variety.
DEMO_SEED = 495
#: Preset of the demo series.
DEMO_PRESET = "standard"
_STAMP = "demo.json"
_LOCK = threading.Lock()

Progress = Callable[[float, str], None]


def _folder() -> Path:
    """The demo dataset folder of this generator version and seed."""
    return demo_dir() / f"luna-v{PHANTOM_VERSION}-seed{DEMO_SEED}"


def _complete(folder: Path) -> Path | None:
    """The demo ``.mhd`` in ``folder`` if the folder holds a complete demo, else ``None``."""
    stamp = folder / _STAMP
    try:
        info = json.loads(stamp.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("version") != PHANTOM_VERSION or info.get("seed") != DEMO_SEED:
        return None
    mhd = folder / str(info.get("mhd", ""))
    try:
        check_mhd_header(mhd)
    except (CorruptFileError, FileMissingError):
        return None
    for name in ("annotations.csv", "annotations_with_malignancy.csv", "candidates.csv"):
        if not (folder / name).is_file():
            return None
    return mhd


def demo_dataset_dir(progress: Progress | None = None) -> Path:
    """The demo's LUNA16-format dataset folder, generating it on first use.

    Args:
        progress: ``progress(fraction, text)`` while generating (not called when reused).

    Returns:
        The folder holding ``subset0/<uid>.mhd`` and the CSV files.

    Raises:
        DatasetError: the per-user data folder cannot be written.
    """
    folder = _folder()
    with _LOCK:
        if _complete(folder) is not None:
            return folder
        folder.parent.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=".building-", dir=folder.parent))
        try:
            summary = write_seeds(build, [DEMO_SEED], DEMO_PRESET, progress)
            uid = summary.series_uids[0]
            stamp = {"version": PHANTOM_VERSION, "seed": DEMO_SEED, "preset": DEMO_PRESET,
                     "series_uid": uid, "mhd": f"subset0/{uid}.mhd"}
            (build / _STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
            if _complete(folder) is None:  # another process may have finished first
                replace_directory(build, folder)  # over an incomplete or stale demo
            for old in folder.parent.glob("luna-v*-seed*"):
                if old != folder and old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)  # demos of older generator versions or seeds
        except OSError as exc:
            raise DatasetError(f"cannot write the demo series ({exc.strerror or exc})", folder.parent) from None
        finally:
            if build.exists():
                shutil.rmtree(build, ignore_errors=True)
    return folder


def demo_series_path(progress: Progress | None = None) -> Path:
    """The demo series' ``.mhd`` file, generating it on first use (a few seconds).

    Args:
        progress: ``progress(fraction, text)`` while generating; may be called
            from the calling thread only.

    Returns:
        Path of ``<demo dataset>/subset0/<uid>.mhd``.

    Raises:
        DatasetError: the per-user data folder cannot be written.
    """
    folder = demo_dataset_dir(progress)
    return folder / "subset0" / f"{series_uid(DEMO_SEED)}.mhd"


def demo_truth() -> PhantomTruth:
    """The demo series' ground truth (nodules, ratings, findings, candidates; no label volume).

    Computed from the seed without rendering voxels (about a second);
    coordinates match the written series.
    """
    return truth_of(plan_series(DEMO_SEED, DEMO_PRESET))
