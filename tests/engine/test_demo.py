"""The built-in demo series: content of its seed, generation once, reuse, no half-written reuse."""

from __future__ import annotations

import pytest

import engine.demo as demo
from engine.io.ct import load_ct
from engine.luna import LunaIndex


def test_demo_seed_has_several_kinds_of_nodules_and_a_malignant_one():
    truth = demo.demo_truth()
    assert 3 <= len(truth.nodules) <= 6
    assert len({n.kind for n in truth.nodules}) >= 2
    assert len({n.location for n in truth.nodules}) >= 2
    assert truth.malignant_count >= 1
    assert any(n.kind != "solid" for n in truth.nodules)
    assert not any(truth.flipped_xyz)


@pytest.fixture
def small_demo(monkeypatch: pytest.MonkeyPatch):
    """The demo machinery on the small preset (the real demo is a standard series)."""
    monkeypatch.setattr(demo, "DEMO_PRESET", "small")
    return demo


def test_generated_once_then_reused(small_demo, monkeypatch: pytest.MonkeyPatch):
    fractions = []
    path = small_demo.demo_series_path(lambda f, t: fractions.append(f))
    assert path.is_file() and path.suffix == ".mhd" and fractions and fractions[-1] == 1.0
    assert path.parent.parent == small_demo.demo_dataset_dir()
    ct = load_ct(path)
    assert ct.series_uid == path.stem

    def fail(*args, **kwargs):
        raise AssertionError("the demo was generated again")

    monkeypatch.setattr(demo, "write_seeds", fail)
    assert small_demo.demo_series_path() == path
    index = LunaIndex.open(path.parent.parent)
    assert index.series_uids == (path.stem,)
    assert len(index.annotations) == len(small_demo.demo_truth().nodules)


def test_older_demos_are_removed(small_demo):
    stale = demo._folder().parent / "luna-v0-seed1"
    (stale / "subset0").mkdir(parents=True)
    (stale / "subset0" / "old.raw").write_bytes(b"\0" * 100)
    path = small_demo.demo_series_path()
    assert path.is_file() and not stale.exists()


def test_a_truncated_demo_is_regenerated(small_demo):
    path = small_demo.demo_series_path()
    raw = path.with_suffix(".raw")
    raw.write_bytes(raw.read_bytes()[:1000])  # as if the machine died while writing
    again = small_demo.demo_series_path()
    assert again == path
    assert raw.stat().st_size == 2 * 64 * 160 * 160
    load_ct(again)


def test_an_interrupted_generation_leaves_nothing_to_reuse(small_demo, monkeypatch: pytest.MonkeyPatch):
    real = demo.write_seeds

    def crash(out_dir, seeds, preset, progress=None):
        real(out_dir, seeds, preset, progress)
        raise KeyboardInterrupt  # killed after writing, before the folder was moved into place

    monkeypatch.setattr(demo, "write_seeds", crash)
    with pytest.raises(KeyboardInterrupt):
        small_demo.demo_series_path()
    folder = demo._folder()
    assert not folder.exists()
    assert not list(folder.parent.glob(".building-*"))
    monkeypatch.setattr(demo, "write_seeds", real)
    assert small_demo.demo_series_path().is_file()


@pytest.mark.slow
def test_standard_demo_series():
    path = demo.demo_series_path()
    ct = load_ct(path)
    assert ct.shape[1:] == (512, 512)
    truth = demo.demo_truth()
    assert ct.series_uid == truth.series_uid
