"""A real training run from the window: ``python -m training`` on a tiny phantom dataset, then Detect with its checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from PySide6.QtCore import Qt

torch = pytest.importorskip("torch")

from app.main_window import MainWindow  # noqa: E402 — after the torch check
from app.training.record import RunStatus  # noqa: E402
from engine.paths import runs_dir  # noqa: E402
from tests.app.conftest import detect_and_wait  # noqa: E402
from tests.app.test_models_menu import choose_and_wait, save_tiny  # noqa: E402


def test_train_one_epoch_from_the_panel_then_detect_with_it(qtbot, tmp_path: Path, errors) -> None:
    from engine.checkpoints import load_checkpoint
    from engine.phantom import write_dataset
    from tests.engine.fake_chest import lung_block

    dataset = write_dataset(tmp_path / "phantoms", 2, seed=1, preset="small")
    window = MainWindow()
    qtbot.addWidget(window)
    window.resize(1400, 900)
    window.show()
    window.show_training()
    panel = window.training_panel
    form = panel.form
    form.set_dataset(dataset.root)
    qtbot.waitUntil(lambda: form.usable, timeout=10000)
    assert "2 series" in form.data_status.text()
    form.set_kind("segmentation")
    form.epochs.setValue(1)
    form.epoch_size.setValue(8)
    form.batch_size.setValue(4)
    form.device.setCurrentText("cpu")
    form.extra.setText("--val-stride 2")  # one training and one validation series
    form.run_name.setText("tiny-seg")
    qtbot.mouseClick(form.start_button, Qt.MouseButton.LeftButton)
    assert panel.controller.busy
    stages: set[str] = set()
    panel.controller.run_changed.connect(lambda what: stages.add(what))
    qtbot.waitUntil(lambda: not panel.controller.busy, timeout=180_000)
    record = panel.controller.viewed
    assert record.status is RunStatus.COMPLETED, (record.message, panel.view.log_view.toPlainText()[-2000:])
    assert {"run_started", "progress", "epoch", "checkpoint", "finished"} <= stages
    run = runs_dir() / "tiny-seg"
    assert record.run_dir == run and (run / "metrics.jsonl").is_file()
    for phase in ("train", "val"):
        assert panel.view.points(phase, "loss")[0] == [1.0]
        assert panel.view.points(phase, "dice")[0] == [1.0]
    assert panel.view.progress.value() == 1000 and panel.view.checkpoints.rowCount() == 2
    assert "E1   val" in panel.view.log_view.toPlainText()  # the trainer's own summary, from its stderr
    # Use for Detect: the run's best checkpoint becomes the segmentation model
    best = run / "checkpoints" / "best.pt"
    qtbot.mouseClick(panel.view.use_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.models.choice.segmentation is not None and not window.models.checking, timeout=30000)
    assert window.models.choice.segmentation == best.resolve()
    assert "seg run tiny-seg (best)" in window.model_label.text()
    # segmentation training makes only a U-Net: tiny classifiers complete the pipeline
    for role in ("classifier", "malignancy"):
        choose_and_wait(qtbot, window, role, save_tiny(tmp_path / f"{role}.pt", role))
    window.state.set_volume(lung_block())
    detect_and_wait(qtbot, window, timeout=120_000)
    assert errors == []
    result = window.state.result
    assert result is not None
    assert result.model_ids["segmentation"] == load_checkpoint(best, expected_kind="segmentation").model_id
    assert "Research software" in window.detection_panel.disclaimer.text()  # no demo model in this result
    assert window.model_label.text().startswith("Models: seg run tiny-seg (best)")
