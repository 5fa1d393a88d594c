"""Filling the crop cache from a LUNA16-format dataset (the book's ``prepcache``).

Two shard kinds, one per series:

* ``classifier`` — every candidate's ``(32, 48, 48)`` crop (int16 HU clipped to
  [-1000, 1000]) in the index's candidate order; used by the nodule classifier
  and the malignancy model.
* ``segmentation`` — a ``(7, 96, 96)`` context crop around every annotated
  nodule with the centre slice of its ground-truth mask, and the same crop
  moved to each other slice of the nodule's mask box that shows mask voxels
  (``--nodule-slices all`` trains on them; the book used the centre slice
  only); the same around up to
  ``negative_crops`` non-nodule candidates of ``candidates.csv`` (hard
  negatives: vessels, pleura, airway walls; used with ``--ratio``); and every
  slice that holds mask voxels with the context slices it needs (validation
  uses them as whole slices).

Each series' CT is loaded once for all missing shards; with ``num_workers > 0``
series are processed in parallel worker processes that write their shards
themselves.
"""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from training.cache import ShardCache, shard_key

CLASSIFIER = "classifier"
SEGMENTATION = "segmentation"
CACHE_KINDS = (CLASSIFIER, SEGMENTATION)

#: Parameters baked into the classifier shards (part of their key).
CLASSIFIER_PARAMS: dict[str, Any] = {"crop_shape": [32, 48, 48], "hu_clip": [-1000, 1000]}
#: Parameters baked into the segmentation shards (part of their key).
SEGMENTATION_PARAMS: dict[str, Any] = {
    "crop_shape": [7, 96, 96],
    "context": 3,
    "mask_threshold_hu": -700.0,
    "mask_start_radius": 2,
    "hu_clip": [-1000, 1000],
    "negative_crops": 32,
    "nodule_slices": "extent",
    "max_slice_offset": 10,
}
PARAMS = {CLASSIFIER: CLASSIFIER_PARAMS, SEGMENTATION: SEGMENTATION_PARAMS}


@dataclass(frozen=True, eq=False)
class ShardRequest:
    """One series' shard of one kind.

    Args:
        kind: ``"classifier"`` or ``"segmentation"``.
        uid: Series uid.
        mhd_path: The series file.
        centers_xyz: ``(N, 3)`` float64 sample centres, LPS mm (candidates, or
            nodules followed by negative candidates).
        key: The shard key (see :func:`training.cache.shard_key`).
        n_nodules: Segmentation: how many leading centres are annotated nodules.
    """

    kind: str
    uid: str
    mhd_path: Path
    centers_xyz: np.ndarray
    key: str
    n_nodules: int = 0


def negative_positions(count: int, wanted: int) -> np.ndarray:
    """Evenly spaced positions of ``min(count, wanted)`` items among ``count`` (deterministic)."""
    if count <= wanted:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, wanted).round().astype(np.int64))


def series_centers(index: Any, kind: str, uid: str) -> tuple[np.ndarray, int]:
    """Sample centres of one series for a shard kind.

    Classifier shards follow ``index.candidates`` order. Segmentation shards
    hold the series' annotated nodules (``index.annotations_for(uid)`` order),
    then up to ``negative_crops`` of its non-nodule candidates, evenly spread
    over their list.

    Returns:
        ``(centres (N, 3) float64 LPS mm, number of leading nodule centres)``.
    """
    if kind == CLASSIFIER:
        points = [c.center_xyz for c in index.candidates_in([uid])]
        n_nodules = 0
    elif kind == SEGMENTATION:
        points = [a.center_xyz for a in index.annotations_for(uid)]
        n_nodules = len(points)
        negatives = [c.center_xyz for c in index.candidates_in([uid]) if not c.is_nodule]
        points += [negatives[i] for i in negative_positions(len(negatives), SEGMENTATION_PARAMS["negative_crops"])]
    else:
        raise ValueError(f"unknown cache kind {kind!r}; use one of {', '.join(CACHE_KINDS)}")
    return np.asarray(points, dtype=np.float64).reshape(-1, 3), n_nodules


def plan_shards(index: Any, kind: str, uids: Iterable[str]) -> list[ShardRequest]:
    """The shard each series needs (whether or not it is cached yet).

    Args:
        index: A :class:`engine.luna.LunaIndex`.
        kind: Cache kind.
        uids: Series to cover.
    """
    requests = []
    for uid in uids:
        centers, n_nodules = series_centers(index, kind, uid)
        path = index.path_for(uid)
        key = shard_key(kind, {**PARAMS[kind], "n_nodules": n_nodules}, path, centers)
        requests.append(ShardRequest(kind, uid, path, centers, key, n_nodules))
    return requests


def _classifier_arrays(hu: np.ndarray, centers_irc: np.ndarray) -> dict[str, np.ndarray]:
    from engine.crops import gather_crops

    shape = tuple(CLASSIFIER_PARAMS["crop_shape"])
    crops = gather_crops(hu, centers_irc, shape) if len(centers_irc) else np.zeros((0, *shape), np.int16)
    return {"crops": np.clip(crops, -1000, 1000).astype(np.int16), "center_irc": centers_irc.astype(np.int64)}


def _label_crops(mask: np.ndarray, centers_irc: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Centre slices of mask crops cut exactly like the image crops, ``(N, rows, cols)`` bool."""
    from engine.crops import gather_crops

    fits = all(mask.shape[a] >= shape[a] for a in range(3))
    source = mask.view(np.uint8) if fits else mask.astype(np.int16)  # padding needs a signed type
    return gather_crops(source, centers_irc, shape)[:, shape[0] // 2] > 0


def _nodule_slice_centers(hu: np.ndarray, centers: np.ndarray, max_offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Crop centres moved to the other slices of each nodule's mask box.

    Args:
        hu: The volume.
        centers: ``(K, 3)`` nodule centres (irc) inside the volume.
        max_offset: Largest slice offset from the centre.

    Returns:
        ``(centres (E, 3), nodule number (E,), slice offset (E,))``, offsets ≠ 0.
    """
    from engine.masks import nodule_box_radii

    p = SEGMENTATION_PARAMS
    rows: list[tuple[int, int, int, int, int]] = []
    for number, center in enumerate(centers):
        reach = min(nodule_box_radii(hu, center, p["mask_threshold_hu"], p["mask_start_radius"])[0], max_offset)
        for offset in range(-reach, reach + 1):
            if offset and 0 <= center[0] + offset < hu.shape[0]:
                rows.append((center[0] + offset, center[1], center[2], number, offset))
    table = np.asarray(rows, dtype=np.int64).reshape(-1, 5)
    return table[:, :3], table[:, 3], table[:, 4]


def _segmentation_arrays(hu: np.ndarray, centers_irc: np.ndarray, n_nodules: int) -> dict[str, np.ndarray]:
    from engine.crops import context_indices, gather_crops
    from engine.masks import mask_slice_indices, nodule_mask

    p = SEGMENTATION_PARAMS
    shape = tuple(p["crop_shape"])
    inside = np.all((centers_irc >= 0) & (centers_irc < np.asarray(hu.shape)), axis=1)
    is_nodule = np.arange(len(centers_irc)) < n_nodules
    centers, is_nodule = centers_irc[inside].astype(np.int64), is_nodule[inside]
    mask = nodule_mask(hu, centers[is_nodule], p["mask_threshold_hu"], p["mask_start_radius"])
    # nodule centres first, then the nodules' other slices, then the negative candidates
    nodules, negatives = centers[is_nodule], centers[~is_nodule]
    moved, moved_number, moved_offset = _nodule_slice_centers(hu, nodules, p["max_slice_offset"])
    centers = np.concatenate([nodules, moved, negatives])
    number = np.concatenate([np.arange(len(nodules)), moved_number, np.full(len(negatives), -1)]).astype(np.int64)
    offset = np.concatenate([np.zeros(len(nodules)), moved_offset, np.zeros(len(negatives))]).astype(np.int64)
    if len(centers):
        crops = np.clip(gather_crops(hu, centers, shape), -1000, 1000).astype(np.int16)
        labels = _label_crops(mask, centers, shape)
    else:
        crops = np.zeros((0, *shape), np.int16)
        labels = np.zeros((0, *shape[1:]), bool)
    keep = (offset == 0) | labels.reshape(len(labels), -1).any(axis=1)  # moved crops must show mask
    mask_index = mask_slice_indices(mask)
    slab_index = np.unique(context_indices(mask_index, hu.shape[0], p["context"]))
    return {
        "crops": crops[keep],
        "labels": labels[keep],
        "is_nodule": (number >= 0)[keep],
        "nodule_number": number[keep],
        "slice_offset": offset[keep],
        "center_irc": centers[keep],
        "mask_index": mask_index,
        "mask_slices": mask[mask_index],
        "slab_index": slab_index.astype(np.int64),
        "slab": np.clip(hu[slab_index], -1000, 1000).astype(np.int16),
    }


def build_series_shards(cache_root: Path, requests: list[ShardRequest]) -> list[dict[str, Any]]:
    """Load one series once and write the requested shards (runs in a worker process).

    Args:
        cache_root: The cache folder.
        requests: Shards of the same series.

    Returns:
        The metadata written for each shard.
    """
    from engine.io.ct import load_ct
    from engine.geometry import xyz_to_irc

    ct = load_ct(requests[0].mhd_path)
    hu = np.asarray(ct.hu)
    cache = ShardCache(cache_root)
    metas = []
    for request in requests:
        centers_irc = xyz_to_irc(ct.geometry, request.centers_xyz).reshape(-1, 3)
        if request.kind == CLASSIFIER:
            arrays = _classifier_arrays(hu, centers_irc)
        else:
            arrays = _segmentation_arrays(hu, centers_irc, request.n_nodules)
        meta = {
            "uid": request.uid,
            "kind": request.kind,
            "shape_irc": list(hu.shape),
            "spacing_xyz": list(ct.geometry.spacing_xyz),
            "samples": int(len(request.centers_xyz)),
            "params": PARAMS[request.kind],
        }
        if request.kind == SEGMENTATION:
            meta["nodule_crops"] = int((arrays["is_nodule"] & (arrays["slice_offset"] == 0)).sum())
            meta["nodule_slice_crops"] = int((arrays["slice_offset"] != 0).sum())
            meta["negative_crops"] = int((~arrays["is_nodule"]).sum())
            meta["mask_slices"] = int(len(arrays["mask_index"]))
            meta["mask_voxels"] = int(arrays["mask_slices"].sum())
        cache.store(request.kind, request.uid, request.key, arrays, meta)
        metas.append(meta)
    return metas


def fill_cache(
    cache: ShardCache,
    requests: Iterable[ShardRequest],
    num_workers: int = 0,
    progress: Callable[[int, int, str], None] | None = None,
) -> int:
    """Build every requested shard that is not cached yet.

    Args:
        cache: The cache.
        requests: Shards wanted (any kinds, any series).
        num_workers: Worker processes; 0 builds in this process.
        progress: Called as ``progress(done, total, series_uid)`` after each series.

    Returns:
        The number of series loaded.
    """
    missing: dict[str, list[ShardRequest]] = {}
    for request in requests:
        if not cache.has(request.kind, request.uid, request.key):
            missing.setdefault(request.uid, []).append(request)
    groups = list(missing.values())
    total = len(groups)
    if num_workers <= 0 or total <= 1:
        for done, group in enumerate(groups, start=1):
            build_series_shards(cache.root, group)
            if progress is not None:
                progress(done, total, group[0].uid)
        return total
    with ProcessPoolExecutor(max_workers=num_workers) as pool:
        futures = {pool.submit(build_series_shards, cache.root, group): group[0].uid for group in groups}
        for done, future in enumerate(as_completed(futures), start=1):
            future.result()
            if progress is not None:
                progress(done, total, futures[future])
    return total


def default_cache_root(data_root: Path) -> Path:
    """The per-user cache folder of a dataset (one per dataset path)."""
    import hashlib

    from engine.paths import cache_dir

    tag = hashlib.sha1(str(Path(data_root).resolve()).encode()).hexdigest()[:12]
    return cache_dir() / "training" / f"{Path(data_root).resolve().name}-{tag}"
