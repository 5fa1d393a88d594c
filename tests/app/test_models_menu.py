"""The Models menu: choose a file or a finished run, wrong kinds refused, remembered, shown in the status bar, used by Detect."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from app.main_window import MainWindow  # noqa: E402 — after the torch check
from app.model_choice import ModelChoice  # noqa: E402
from engine.paths import runs_dir  # noqa: E402


def save_tiny(path: Path, kind: str, seed: int = 1) -> Path:
    """A small real checkpoint of ``kind``."""
    from engine.checkpoints import save_checkpoint
    from tests.engine.fake_chest import tiny_classifier, tiny_segmentation

    if kind == "segmentation":
        model, args = tiny_segmentation(seed), {"depth": 2, "wf": 2}
    else:
        model, args = tiny_classifier(seed), {"conv_channels": 2}
    save_checkpoint(path, model, kind, model_args=args, metadata={"epoch": 3})
    return path


@pytest.fixture
def checkpoints(tmp_path: Path) -> dict[str, Path]:
    return {kind: save_tiny(tmp_path / f"{kind}.pt", kind) for kind in ("segmentation", "classifier", "malignancy")}


@pytest.fixture
def make_main(qtbot):
    """Factory: a window whose Models menu decides Detect's models (no detector given)."""

    def make() -> MainWindow:
        window = MainWindow()
        qtbot.addWidget(window)
        window.resize(1200, 800)
        window.show()
        return window

    return make


def choose_and_wait(qtbot, window: MainWindow, role: str, path: Path | None) -> None:
    window.models.choose(role, path)
    qtbot.waitUntil(lambda: not window.models.checking, timeout=20000)


def test_a_file_is_checked_used_shown_and_remembered(qtbot, make_main, checkpoints, monkeypatch) -> None:
    from PySide6.QtWidgets import QFileDialog

    window = make_main()
    assert window.models.choice == ModelChoice() and window.model_label.text() == "Models: demo"
    assert window.provider.demo
    # Models ▸ Nodule classifier model ▸ From file…
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(checkpoints["classifier"]), ""))
    action = next(a for a in window.models.submenus["classifier"].actions() if a.text() == "From &file…")
    action.trigger()
    qtbot.waitUntil(lambda: window.models.choice.classifier is not None, timeout=20000)
    assert window.models.choice.classifier == checkpoints["classifier"].resolve()
    assert window.model_label.text() == "Models: seg demo · nodule classifier.pt · malignancy demo"
    assert str(checkpoints["classifier"]) in window.model_label.toolTip()
    assert window.provider.demo  # two roles still use the demo weights: results keep the demo disclaimer
    assert window.settings.last_models()["classifier"] == str(checkpoints["classifier"].resolve())
    # a malignancy run fine-tunes the classifier Detect uses, unless told otherwise
    window.training_panel.form.set_kind("malignancy")
    assert window.training_panel.form.finetune_edit.text() == str(checkpoints["classifier"].resolve())
    for role in ("segmentation", "malignancy"):
        choose_and_wait(qtbot, window, role, checkpoints[role])
    assert not window.provider.demo
    # Detect's detector is built from exactly these files
    from engine.checkpoints import load_checkpoint

    detector = window.provider.get()
    for role, path in checkpoints.items():
        assert detector.model_ids[role] == load_checkpoint(path).model_id
    # back to the demo weights for one role, then all
    choose_and_wait(qtbot, window, "malignancy", None)
    assert window.models.choice.malignancy is None and window.provider.demo
    window.models.use_demo()
    assert window.model_label.text() == "Models: demo" and window.settings.last_models()["segmentation"] == "demo"


def test_a_wrong_kind_or_a_broken_file_is_refused(qtbot, make_main, checkpoints, tmp_path, errors) -> None:
    window = make_main()
    choose_and_wait(qtbot, window, "segmentation", checkpoints["classifier"])
    assert window.models.choice.segmentation is None
    title, text = errors[-1]
    assert title == "Cannot use this segmentation checkpoint"
    assert "holds a classifier model, but a segmentation model is needed" in text and "classifier.pt" in text
    choose_and_wait(qtbot, window, "malignancy", checkpoints["classifier"])  # a nodule classifier is not a malignancy model
    assert "malignancy model is needed" in errors[-1][1] and window.models.choice.malignancy is None
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    choose_and_wait(qtbot, window, "classifier", broken)
    assert "broken.pt" in errors[-1][1] and window.models.choice == ModelChoice()
    assert window.model_label.text() == "Models: demo" and window.settings.last_models() == {}


def test_the_choice_is_restored_at_start(qtbot, make_main, checkpoints, tmp_path) -> None:
    first = make_main()
    for role, path in checkpoints.items():
        choose_and_wait(qtbot, first, role, path)
    first.close()
    second = make_main()
    assert second.models.choice == ModelChoice(**{r: p.resolve() for r, p in checkpoints.items()})
    assert second.model_label.text() == "Models: seg segmentation.pt · nodule classifier.pt · malignancy malignancy.pt"
    assert not second.provider.demo
    second.close()
    # a remembered file that has gone falls back to the demo weights; the setting is kept for when it comes back
    moved = tmp_path / "moved.pt"
    checkpoints["segmentation"].rename(moved)
    third = make_main()
    assert "Remembered checkpoint(s) missing" in third.statusBar().currentMessage()
    assert third.models.choice.segmentation is None and third.models.choice.classifier is not None
    assert "seg demo" in third.model_label.text()
    assert third.settings.last_models()["segmentation"] == str(checkpoints["segmentation"].resolve())


def test_a_window_given_its_own_detector_only_shows_the_choice(qtbot, make_window, checkpoints, fake_detector) -> None:
    window = make_window()
    choose_and_wait(qtbot, window, "classifier", checkpoints["classifier"])
    assert window.models.choice.classifier is not None
    assert window.provider.get() is fake_detector  # tests and benchmarks keep their detector


def test_finished_runs_are_offered_and_used_for_detect(qtbot, make_main, tmp_path) -> None:
    run = runs_dir() / "cls-run"
    best = save_tiny(run / "checkpoints" / "best.pt", "classifier", seed=4)
    (run / "config.json").write_text(json.dumps({"config": {"kind": "classifier", "run_name": "cls-run", "epochs": 1}}))
    (run / "metrics.jsonl").write_text(json.dumps({"event": "finished", "status": "completed", "epoch": 1}) + "\n")
    unfinished = runs_dir() / "still-going"
    save_tiny(unfinished / "checkpoints" / "best.pt", "classifier")
    (unfinished / "config.json").write_text(json.dumps({"config": {"kind": "classifier"}}))
    (unfinished / "metrics.jsonl").write_text(json.dumps({"event": "progress"}) + "\n")
    window = make_main()
    menu = window.models.submenus["classifier"]
    window.models.fill_role_menu("classifier")
    texts = [a.text() for a in menu.actions()]
    assert "Demo weights (synthetic data)" in texts and "cls-run  (best.pt)" in texts
    assert not any("still-going" in t for t in texts)
    assert not any("cls-run" in a.text() for a in window.models.submenus["segmentation"].actions())
    next(a for a in menu.actions() if a.text() == "cls-run  (best.pt)").trigger()
    qtbot.waitUntil(lambda: window.models.choice.classifier is not None and not window.models.checking, timeout=20000)
    assert window.models.choice.classifier == best.resolve()
    assert "nodule run cls-run (best)" in window.model_label.text()
    window.models.fill_role_menu("classifier")
    checked = [a.text() for a in menu.actions() if a.isChecked()]
    assert checked == ["cls-run  (best.pt)"]
