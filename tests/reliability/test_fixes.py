"""The known failures of issue 18, each fixed and kept fixed.

Outputs that would replace inputs, devices or folders; training run names and
dead-end runs; duplicated annotation rows.
"""

from __future__ import annotations

import csv
import os
import stat
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk

import main
from engine.errors import OutputPathError, TrainingRunError
from engine.files import check_output_folder, check_output_path, check_output_paths


@pytest.fixture
def ct_file(tmp_path: Path) -> Path:
    image = sitk.GetImageFromArray(np.full((6, 16, 16), -1000, np.int16))
    path = tmp_path / "CT.mhd"
    sitk.WriteImage(image, str(path))
    return path


# --- (a) outputs never replace an input, a special file or a folder ------------------------
@pytest.mark.parametrize("option,target", [("--csv", "CT.raw"), ("--json", "CT.mhd"), ("--csv", "."), ("--json", "fifo")])
def test_analyze_refuses_outputs_over_inputs_folders_and_fifos(option, target, ct_file: Path, capsys) -> None:
    folder = ct_file.parent
    if target == "fifo":
        os.mkfifo(folder / "fifo")
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert main.main(["analyze", str(ct_file), option, str(folder / target)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nothing was written" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    if target == "fifo":
        assert stat.S_ISFIFO((folder / "fifo").stat().st_mode)


def test_a_device_is_never_replaced() -> None:
    with pytest.raises(OutputPathError, match="special file"):
        check_output_path("/dev/full")
    assert stat.S_ISCHR(Path("/dev/full").stat().st_mode)


def test_two_outputs_may_not_share_a_file_and_links_to_inputs_are_inputs(tmp_path: Path, ct_file: Path) -> None:
    with pytest.raises(OutputPathError, match="both --csv and --json"):
        check_output_paths({"--csv": tmp_path / "a", "--json": tmp_path / "a"})
    (tmp_path / "link.raw").symlink_to(tmp_path / "CT.raw")
    os.link(tmp_path / "CT.raw", tmp_path / "hard.raw")
    for name in ("link.raw", "hard.raw"):
        with pytest.raises(OutputPathError, match="input of this run"):
            check_output_path(tmp_path / name, [tmp_path / "CT.raw"])
    check_output_path(tmp_path / "new.csv", [ct_file, tmp_path / "CT.raw"])  # a new file beside is fine


def test_output_folders_refuse_files_inputs_and_folders_holding_inputs(tmp_path: Path, ct_file: Path) -> None:
    with pytest.raises(OutputPathError, match="not a folder"):
        check_output_folder(ct_file)
    with pytest.raises(OutputPathError, match="input of this run"):
        check_output_folder(tmp_path, [tmp_path])
    with pytest.raises(OutputPathError, match="holds the input"):
        check_output_folder(tmp_path, [ct_file], replaced=True)
    assert main.main(["export", str(tmp_path), "--cls", str(ct_file)]) == 2  # an export would replace the folder
    assert ct_file.exists()


# --- (c) run names ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["../../x", "..", "/abs/path", "r" * 300, "a/b", ".hidden", ""])
def test_run_names_that_are_not_folder_names_are_refused(name: str) -> None:
    from engine.run_layout import check_run_name

    with pytest.raises(TrainingRunError, match="cannot be a folder name"):
        check_run_name(name)


# --- (d) dead-end runs ----------------------------------------------------------------------------
def _dead_end(run_dir: Path) -> None:
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "config.json").write_text('{"config": {}}')
    (run_dir / "metrics.jsonl").write_text('{"event": "error"}\n')
    (run_dir / "checkpoints" / ".last.pt.1a2b3c4d.tmp").write_bytes(b"half a checkpoint")


def test_a_new_start_on_a_dead_end_says_how_to_go_on(tmp_path: Path) -> None:
    from training.runs import start_run_dir

    _dead_end(tmp_path / "run")
    with pytest.raises(TrainingRunError, match="never wrote a checkpoint.*pass --resume"):
        start_run_dir(tmp_path / "run", resume=False)


def test_a_resume_of_a_dead_end_starts_at_epoch_one(tmp_path: Path) -> None:
    from training.runs import start_run_dir

    _dead_end(tmp_path / "run")
    start = start_run_dir(tmp_path / "run", resume=True)
    try:
        assert start.resume is False and any("epoch 1" in note for note in start.notes)
        assert not list((tmp_path / "run/checkpoints").glob(".*.tmp*"))  # a killed write's leftovers are gone
        assert any("temporary" in note for note in start.notes)
    finally:
        start.release()


def test_a_folder_with_checkpoints_is_never_reused_and_a_live_run_is_never_shared(tmp_path: Path) -> None:
    from training.runs import start_run_dir

    run = tmp_path / "run"
    _dead_end(run)
    from engine.checkpoints import save_checkpoint
    from engine.models import NoduleClassifier

    save_checkpoint(run / "checkpoints" / "last.pt", NoduleClassifier(conv_channels=2), "classifier",
                    model_args={"conv_channels": 2}, metadata={"epoch": 1})
    with pytest.raises(TrainingRunError, match="already holds a training run"):
        start_run_dir(run, resume=False)
    live = start_run_dir(run, resume=True)
    try:
        with pytest.raises(TrainingRunError, match="running in this folder"):
            start_run_dir(run, resume=True)
    finally:
        live.release()
    start_run_dir(run, resume=True).release()  # free again once the first let go


# --- (g) duplicated annotation rows ---------------------------------------------------------------
def test_duplicated_annotation_rows_are_dropped_and_counted(tmp_path: Path, monkeypatch, capsys) -> None:
    from engine.commands import evaluate as evaluate_command

    uid = "1.2.840.5"
    data = tmp_path / "luna"
    (data / "subset0").mkdir(parents=True)
    sitk.WriteImage(sitk.GetImageFromArray(np.full((20, 40, 40), -1000, np.int16)), str(data / "subset0" / f"{uid}.mhd"))
    nodules = [(4.0 + 7 * k, 20.0, 10.0, 5.0) for k in range(5)]
    with (data / "annotations.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        for row in nodules + nodules:  # every row twice
            writer.writerow([uid, *row])

    class AtTheNodules:
        def detect(self, ct, progress=None, cancelled=None):
            progress(1.0, "done")
            return SimpleNamespace(series_uid=ct.series_uid, candidates=[
                SimpleNamespace(center_xyz=(x, y, z), center_irc=(z, y, x), p_nodule=0.9, p_malignant=0.5,
                                diameter_mm=d, voxel_count=30) for x, y, z, d in nodules])

    monkeypatch.setattr(evaluate_command, "build_detector",
                        lambda args: (AtTheNodules(), "fake", lambda ct, xyz: np.full(len(xyz), 0.5)))
    rc = main.main(["evaluate", "--data", str(data), "--split", "all", "--out", str(tmp_path / "out"), "--bootstrap", "0"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "dropped 5 duplicated row(s)" in out and "5 distinct nodules kept" in out
    assert "5 of 5 nodules found" in out


def test_a_kill_between_last_and_best_is_repaired_on_resume(tmp_path: Path) -> None:
    """Found by the kill suite: best.pt was lost for good when a kill came right after last.pt of a best epoch."""
    from engine.checkpoints import load_checkpoint, save_checkpoint
    from engine.models import NoduleClassifier
    from training.runs import start_run_dir

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text('{"config": {}}')
    metadata = {"epoch": 2, "loop_state": {"epoch": 2, "best_epoch": 2}}
    save_checkpoint(run / "checkpoints/last.pt", NoduleClassifier(conv_channels=2), "classifier",
                    model_args={"conv_channels": 2}, metadata=metadata)
    start = start_run_dir(run, resume=True)
    try:
        assert start.resume and any("best.pt restored" in note for note in start.notes)
        assert load_checkpoint(run / "checkpoints/best.pt").metadata["epoch"] == 2
    finally:
        start.release()
    again = start_run_dir(run, resume=True)  # nothing more to repair
    try:
        assert not any("best.pt" in note for note in again.notes)
    finally:
        again.release()
