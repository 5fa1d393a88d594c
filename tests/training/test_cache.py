"""The crop cache: contents equal direct crops, changed data invalidates exactly its shards."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from engine.crops import gather_crops
from engine.io.ct import load_ct
from engine.errors import DatasetError
from engine.geometry import xyz_to_irc
from engine.luna import LunaIndex
from training.cache import ShardCache, shard_key
from training.cli import main
from training.prepcache import CLASSIFIER, SEGMENTATION, PARAMS, fill_cache, plan_shards


def _fill(index: LunaIndex, cache: ShardCache, kind: str = CLASSIFIER) -> int:
    return fill_cache(cache, plan_shards(index, kind, index.series_uids))


def test_cached_crops_equal_crops_cut_from_the_ct(tiny_dataset, tmp_path: Path) -> None:
    index = LunaIndex.open(tiny_dataset.root, require_candidates=True)
    cache = ShardCache(tmp_path / "cache")
    assert _fill(index, cache) == len(index.series_uids)
    uid = index.series_uids[2]
    request = plan_shards(index, CLASSIFIER, [uid])[0]
    arrays, meta = cache.load(CLASSIFIER, uid, request.key)
    ct = load_ct(index.path_for(uid))
    irc = xyz_to_irc(ct.geometry, request.centers_xyz)
    expected = np.clip(gather_crops(ct.hu, irc, (32, 48, 48)), -1000, 1000)
    assert arrays["crops"].dtype == np.int16 and np.array_equal(arrays["crops"], expected)
    assert meta["shape_irc"] == list(ct.shape) and meta["samples"] == len(index.candidates_in([uid]))


def test_a_second_fill_loads_nothing(tiny_dataset, tmp_path: Path) -> None:
    index = LunaIndex.open(tiny_dataset.root, require_candidates=True)
    cache = ShardCache(tmp_path / "cache")
    _fill(index, cache)
    assert _fill(index, cache) == 0


def test_touching_a_series_file_rebuilds_that_series_only(tiny_dataset, tmp_path: Path) -> None:
    index = LunaIndex.open(tiny_dataset.root, require_candidates=True)
    cache = ShardCache(tmp_path / "cache")
    _fill(index, cache)
    uid = index.series_uids[1]
    old_key = plan_shards(index, CLASSIFIER, [uid])[0].key
    raw = index.path_for(uid).with_suffix(".raw")
    stat = raw.stat()
    os.utime(raw, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    new_key = plan_shards(index, CLASSIFIER, [uid])[0].key
    assert new_key != old_key
    assert _fill(index, cache) == 1
    shards = [p.name for p in (cache.root / CLASSIFIER / uid).iterdir()]
    assert shards == [new_key[:20]]  # the stale shard is gone


def test_a_changed_candidate_list_rebuilds_only_its_series(tiny_dataset, tmp_path: Path) -> None:
    index = LunaIndex.open(tiny_dataset.root, require_candidates=True)
    cache = ShardCache(tmp_path / "cache")
    _fill(index, cache)
    uid = index.series_uids[4]
    with (tiny_dataset.root / "candidates.csv").open("a", newline="") as handle:
        csv.writer(handle).writerow([uid, "-10.0", "-12.0", "-250.0", "0"])
    index = LunaIndex.open(tiny_dataset.root, require_candidates=True)
    assert _fill(index, cache) == 1
    request = plan_shards(index, CLASSIFIER, [uid])[0]
    arrays, _ = cache.load(CLASSIFIER, uid, request.key)
    assert len(arrays["crops"]) == len(index.candidates_in([uid]))


def test_keys_depend_on_parameters_and_centres(tiny_dataset) -> None:
    index = LunaIndex.open(tiny_dataset.root)
    path = index.path_for(index.series_uids[0])
    centres = np.array([[1.0, 2.0, 3.0]])
    key = shard_key(CLASSIFIER, PARAMS[CLASSIFIER], path, centres)
    assert key == shard_key(CLASSIFIER, PARAMS[CLASSIFIER], path, centres.copy())
    assert key != shard_key(CLASSIFIER, {**PARAMS[CLASSIFIER], "crop_shape": [16, 48, 48]}, path, centres)
    assert key != shard_key(CLASSIFIER, PARAMS[CLASSIFIER], path, centres + 0.5)
    assert key != shard_key(SEGMENTATION, PARAMS[CLASSIFIER], path, centres)


def test_a_damaged_shard_is_reported(tiny_dataset, tmp_path: Path) -> None:
    index = LunaIndex.open(tiny_dataset.root, require_candidates=True)
    cache = ShardCache(tmp_path / "cache")
    _fill(index, cache)
    request = plan_shards(index, CLASSIFIER, index.series_uids[:1])[0]
    (cache.shard_dir(CLASSIFIER, request.uid, request.key) / "crops.npy").unlink()
    with pytest.raises(DatasetError, match="damaged"):
        cache.load(CLASSIFIER, request.uid, request.key)


def test_parallel_fill_matches_serial_fill(tiny_dataset, tmp_path: Path) -> None:
    index = LunaIndex.open(tiny_dataset.root, require_candidates=True)
    serial, parallel = ShardCache(tmp_path / "a"), ShardCache(tmp_path / "b")
    requests = plan_shards(index, SEGMENTATION, index.series_uids)
    fill_cache(serial, requests)
    assert fill_cache(parallel, requests, num_workers=2) == len(requests)
    for request in requests:
        a, _ = serial.load(SEGMENTATION, request.uid, request.key)
        b, _ = parallel.load(SEGMENTATION, request.uid, request.key)
        assert all(np.array_equal(a[name], b[name]) for name in a)


def test_prepcache_command_fills_every_kind(tiny_dataset, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cache_dir = tmp_path / "cache"
    assert main(["prepcache", "--data", str(tiny_dataset.root), "--cache-dir", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "6 series, 12 shards" in out and "6 series loaded" in out
    assert sorted(p.name for p in cache_dir.iterdir()) == [CLASSIFIER, SEGMENTATION]
    assert main(["prepcache", "--data", str(tiny_dataset.root), "--cache-dir", str(cache_dir)]) == 0
    assert "0 series loaded" in capsys.readouterr().out


def test_prepcache_command_reports_a_bad_folder(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["prepcache", "--data", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err
