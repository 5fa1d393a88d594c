"""The Models menu: which segmentation / classifier / malignancy checkpoints Detect uses.

Each role has a submenu: the demo weights, the finished training runs of that
kind (their best checkpoint), and "From file…" (ours or the book's ``.state``
files). A chosen file is loaded once off the GUI thread with the engine's
safe, kind-checked loader before it is used; a wrong kind is refused with a
message and the previous choice stays. The choice is shown in the status bar,
saved in the settings, and restored at start without importing torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from PySide6.QtCore import QObject, Signal, Slot
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import QFileDialog, QMenu, QMessageBox, QWidget

from app.call_worker import CallWorker
from app.model_choice import ROLE_LABELS, ModelChoice, check_checkpoint, detector_factory
from app.settings import AppSettings
from app.training.run_folders import finished_checkpoints
from app.workers import DetectorProvider, ThreadPool
from engine.choices import MODEL_ROLES
from engine.detection.weights import default_weight_paths
from engine.paths import runs_dir

#: File ▸ open filter for checkpoints.
CHECKPOINT_FILTER = "Checkpoints (*.pt *.pth *.state);;All files (*)"


class ModelsMenu(QObject):
    """Keeps the model choice, its menu, the detector provider and the settings in step.

    Args:
        parent: The window (dialogs are centred on it).
        menu: The (empty) Models menu to fill.
        provider: Detect's detector provider; reset when the choice changes.
        settings: Where the choice is remembered.
        pool: Runs the checkpoint checks off the GUI thread.
        drive_provider: Whether the choice decides Detect's models. False when
            the window was given its own detector (tests, benchmarks): the
            choice is then only shown and remembered.
        runs_root: Folder of training runs (default: the user's runs folder).

    Signals:
        changed(object): the new :class:`ModelChoice`.
        refused(str, str): a role and why its new checkpoint was refused.
        notice(str): a status message (e.g. a remembered file that is gone).
    """

    changed = Signal(object)
    refused = Signal(str, str)
    notice = Signal(str)

    def __init__(
        self,
        parent: QWidget,
        menu: QMenu,
        provider: DetectorProvider,
        settings: AppSettings,
        pool: ThreadPool,
        drive_provider: bool = True,
        runs_root: Callable[[], Path] = runs_dir,
    ) -> None:
        super().__init__(parent)
        self.window = parent
        self.menu = menu
        self.provider = provider
        self.settings = settings
        self.pool = pool
        self.drive_provider = drive_provider
        self.runs_root = runs_root
        self.choice = ModelChoice()
        self._pending: set[tuple[str, Path]] = set()
        self._build_menu()

    # --- the choice ---------------------------------------------------------------------------
    def restore(self) -> None:
        """Take the remembered choice (roles whose file is gone fall back to the demo weights).

        Nothing is loaded: the files are read when Detect first builds its detector.
        """
        remembered = ModelChoice.from_settings(self.settings.last_models())
        gone = remembered.missing()
        if gone:
            names = ", ".join(f"{ROLE_LABELS[r].lower()} ({remembered.path(r)})" for r in gone)
            self.notice.emit(f"Remembered checkpoint(s) missing, using the demo weights instead: {names}")
        self._apply(remembered.without_missing(), save=False)

    def choose(self, role: str, path: str | Path | None) -> None:
        """Use ``path`` for ``role`` once it loads as that kind of model (None: the demo weights, at once)."""
        if path is None:
            self._apply(self.choice.with_path(role, None))
            return
        path = Path(path).expanduser().resolve()
        worker = CallWorker(lambda: check_checkpoint(path, role), tag=(role, path))
        worker.done.connect(self._on_checked)
        worker.failed.connect(self._on_refused)
        self._pending.add((role, path))
        self.notice.emit(f"Checking {path.name} as the {ROLE_LABELS[role].lower()} model…")
        self.pool.start(worker)

    def classifier_checkpoint(self) -> Path | None:
        """The nodule classifier Detect uses, as a file (the demo weights' when present): what a malignancy run fine-tunes."""
        chosen = self.choice.path("classifier")
        demo = default_weight_paths()["classifier"]
        return chosen if chosen is not None else (demo if demo.is_file() else None)

    @property
    def checking(self) -> bool:
        """True while a chosen file is being checked."""
        return bool(self._pending)

    def use_demo(self) -> None:
        """Every role back to the demo weights."""
        self._apply(ModelChoice())

    @Slot(object, object)
    def _on_checked(self, tag: tuple[str, Path], description: object) -> None:
        role, path = tag
        self._pending.discard(tag)
        self._apply(self.choice.with_path(role, path))
        self.notice.emit(f"{ROLE_LABELS[role]} model for Detect: {path.name} ({description})")

    @Slot(object, str)
    def _on_refused(self, tag: tuple[str, Path], message: str) -> None:
        role, _path = tag
        self._pending.discard(tag)
        self.refused.emit(role, message)
        QMessageBox.critical(self.window, f"Cannot use this {ROLE_LABELS[role].lower()} checkpoint", message)

    def _apply(self, choice: ModelChoice, save: bool = True) -> None:
        self.choice = choice
        if self.drive_provider:
            self.provider.reset(detector_factory(choice), demo=choice.any_demo)
        if save:
            self.settings.set_last_models(choice.to_settings())
            self.settings.sync()
        self.changed.emit(choice)

    # --- the menu -----------------------------------------------------------------------------
    def _build_menu(self) -> None:
        self.submenus: dict[str, QMenu] = {}
        for role in MODEL_ROLES:
            submenu = self.menu.addMenu(f"{ROLE_LABELS[role]} model")
            submenu.aboutToShow.connect(lambda r=role: self.fill_role_menu(r))
            self.submenus[role] = submenu
            self.fill_role_menu(role)
        self.menu.addSeparator()
        self.menu.addAction("Use the &demo weights for all", self.use_demo)

    @Slot()
    def fill_role_menu(self, role: str) -> None:
        """(Re)build a role's submenu: demo, finished runs of that kind, the current file, From file…"""
        submenu = self.submenus[role]
        submenu.clear()
        group = QActionGroup(submenu)
        current = self.choice.path(role)
        self._radio(submenu, group, "Demo weights (synthetic data)", current is None, lambda: self.choose(role, None))
        runs = finished_checkpoints(self.runs_root(), role)
        if runs:
            submenu.addSection("Finished training runs")
        listed = False
        for name, path in runs:
            chosen = current is not None and _same(current, path)
            listed = listed or chosen
            self._radio(submenu, group, f"{name}  ({path.name})", chosen, lambda p=path: self.choose(role, p))
        if current is not None and not listed:
            submenu.addSeparator()
            self._radio(submenu, group, str(current), True, lambda: None)
        submenu.addSeparator()
        submenu.addAction("From &file…", lambda: self.ask_file(role))

    @staticmethod
    def _radio(menu: QMenu, group: QActionGroup, text: str, checked: bool, slot: Callable[[], None]) -> QAction:
        action = menu.addAction(text)
        action.setCheckable(True)
        action.setChecked(checked)
        group.addAction(action)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def ask_file(self, role: str) -> None:
        """Models ▸ role ▸ From file…"""
        start = str(self.choice.path(role) or self.runs_root())
        path, _ = QFileDialog.getOpenFileName(self.window, f"{ROLE_LABELS[role]} checkpoint", start, CHECKPOINT_FILTER)
        if path:
            self.choose(role, path)


def _same(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b
