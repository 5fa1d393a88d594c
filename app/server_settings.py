"""Detect on this computer or on a detection server: the choice, its dialog, and how it drives Detect.

``Models ▸ Detect on…`` opens :class:`DetectTargetDialog`: "This computer"
(the Models menu's checkpoints) or "Server" with its URL and bearer-token file
(``python main.py serve`` prints where its token is). The choice is a
:class:`DetectTarget`, remembered in the settings. With the server chosen,
Detect's :class:`~app.workers.DetectorProvider` builds an
:class:`engine.serve.client.RemoteDetector` in the worker thread: progress,
cancel and the result are those of a local Detect, and re-grouping groups
here and classifies new candidates on the server.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

from PySide6.QtCore import QObject, Slot
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.call_worker import CallWorker
from app.model_choice import detector_factory

if TYPE_CHECKING:
    from app.main_window import MainWindow
    from engine.serve.client import RemoteDetector

#: The URL offered when none was saved (``python main.py serve``'s default).
DEFAULT_URL = "http://127.0.0.1:8000"
#: Seconds the viewer waits on the server for one step (a whole detection included).
DEFAULT_TIMEOUT_S = 600.0


def default_token_file() -> str:
    """The token file a server on this computer creates (``<user data>/serve/token``)."""
    from engine.serve.auth import default_token_path

    return str(default_token_path())


@dataclass(frozen=True)
class DetectTarget:
    """Where Detect runs.

    Args:
        on_server: True: on the detection server at ``url``; False: this computer.
        url: The server's base URL.
        token_file: File holding the server's bearer token (readable only by the user).
        timeout_s: Seconds to wait on the server for one step.
    """

    on_server: bool = False
    url: str = DEFAULT_URL
    token_file: str = ""
    timeout_s: float = DEFAULT_TIMEOUT_S

    def to_settings(self) -> dict[str, Any]:
        """Plain values for :meth:`AppSettings.set_detect_target`."""
        return {"on_server": self.on_server, "url": self.url, "token_file": self.token_file, "timeout_s": self.timeout_s}

    @classmethod
    def from_settings(cls, values: Mapping[str, Any]) -> DetectTarget:
        """Rebuild from :meth:`to_settings` output; missing or broken values take the defaults."""
        try:
            timeout = float(values.get("timeout_s", DEFAULT_TIMEOUT_S))
        except (TypeError, ValueError):
            timeout = DEFAULT_TIMEOUT_S
        return cls(
            on_server=values.get("on_server") is True,
            url=str(values.get("url") or DEFAULT_URL),
            token_file=str(values.get("token_file") or ""),
            timeout_s=timeout if timeout > 0 else DEFAULT_TIMEOUT_S,
        )

    def token_path(self) -> Path:
        """The token file (the local server's default when none is set)."""
        return Path(self.token_file or default_token_file()).expanduser()

    def describe(self) -> str:
        """``"this computer"`` or ``"server http://..."`` for the status bar."""
        return f"server {self.url}" if self.on_server else "this computer"

    def problem(self) -> str | None:
        """What keeps this target from being used, in words (None: nothing)."""
        if not self.on_server:
            return None
        if not self.url.strip().lower().startswith(("http://", "https://")):
            return f"the server URL must start with http:// or https://, got {self.url!r}"
        if not self.token_path().is_file():
            return f"no token file at {self.token_path()} (the server prints where its token is)"
        return None


def remote_detector_factory(target: DetectTarget) -> Callable[[], RemoteDetector]:
    """A callable that reads the token and connects to the server (call it off the GUI thread).

    Raises (when called):
        ServeError: the token file is missing or readable by others.
        RemoteDetectorError: the server cannot be reached, is not ready or refuses the token.
    """

    def build() -> RemoteDetector:
        from engine.serve.auth import read_token_file
        from engine.serve.client import RemoteDetector

        token = read_token_file(target.token_path())
        return RemoteDetector(target.url, token, timeout=target.timeout_s).connect()

    return build


class DetectTargetDialog(QDialog):
    """Choose this computer or a server (URL, token file), and test the connection.

    Args:
        target: The current choice (the fields start with it).
        pool: Runs the connection test off the GUI thread.
        parent: The window.
    """

    def __init__(self, target: DetectTarget, pool: Any, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Detect on")
        self.pool = pool
        self._base = target
        self.local = QRadioButton("This &computer (the Models menu's checkpoints)")
        self.server = QRadioButton("A detection &server")
        group = QButtonGroup(self)
        for button in (self.local, self.server):
            group.addButton(button)
        (self.server if target.on_server else self.local).setChecked(True)
        self.url = QLineEdit(target.url)
        self.url.setPlaceholderText(DEFAULT_URL)
        self.token_file = QLineEdit(target.token_file)
        self.token_file.setPlaceholderText(default_token_file())
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        token_row = QHBoxLayout()
        token_row.addWidget(self.token_file, 1)
        token_row.addWidget(browse)
        self.test_button = QPushButton("&Test connection")
        self.test_button.clicked.connect(self.test_connection)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        form = QFormLayout()
        form.addRow("URL", self.url)
        form.addRow("Token file", token_row)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        note = QLabel("The CT is uploaded to the server for each Detect. Start one with "
                      "<code>python main.py serve</code>; it prints its token file.")
        note.setWordWrap(True)
        layout = QVBoxLayout(self)
        for widget in (self.local, self.server):
            layout.addWidget(widget)
        layout.addLayout(form)
        layout.addWidget(note)
        layout.addWidget(self.test_button)
        layout.addWidget(self.status)
        layout.addWidget(buttons)
        self.server.toggled.connect(self._sync)
        self._sync()

    def target(self) -> DetectTarget:
        """The choice as the fields show it now."""
        return replace(
            self._base, on_server=self.server.isChecked(), url=self.url.text().strip() or DEFAULT_URL,
            token_file=self.token_file.text().strip(),
        )

    def accept(self) -> None:
        """Keep the dialog open, with the reason, while the server fields cannot be used."""
        problem = self.target().problem()
        if problem:
            self.status.setText(problem)
            return
        super().accept()

    @Slot()
    def test_connection(self) -> None:
        """Read the token and ask the server for its models, off the GUI thread; the answer shows below."""
        target = replace(self.target(), on_server=True, timeout_s=15.0)
        problem = target.problem()
        if problem:
            self.status.setText(problem)
            return
        self.status.setText(f"Connecting to {target.url}…")
        self.test_button.setEnabled(False)
        worker = CallWorker(lambda: remote_detector_factory(target)().device, tag=target.url)
        worker.done.connect(self._on_tested)
        worker.failed.connect(self._on_test_failed)
        self.pool.start(worker)

    @Slot(object, object)
    def _on_tested(self, url: object, device: object) -> None:
        self.test_button.setEnabled(True)
        self.status.setText(f"Connected: the models run on {device}.")

    @Slot(object, str)
    def _on_test_failed(self, url: object, message: str) -> None:
        self.test_button.setEnabled(True)
        self.status.setText(message)

    def _sync(self) -> None:
        on = self.server.isChecked()
        for widget in (self.url, self.token_file, self.test_button):
            widget.setEnabled(on)

    def _browse(self) -> None:
        start = self.token_file.text() or default_token_file()
        path, _ = QFileDialog.getOpenFileName(self, "Server token file", str(Path(start).parent))
        if path:
            self.token_file.setText(path)


class DetectTargetMenu(QObject):
    """``Models ▸ Detect on…``: keeps the target, the settings and Detect's provider in step.

    With the server chosen, every change of the Models menu's choice (which
    resets the provider to local checkpoints) is followed by the server again,
    so the Models menu only decides the models of Detect on this computer.

    Args:
        window: The main window (its ``models``, ``provider``, ``settings``, ``pool``).
        menu: The Models menu, to add the entry to.
    """

    def __init__(self, window: MainWindow, menu: Any) -> None:
        super().__init__(window)
        self.window = window
        self.target = DetectTarget.from_settings(window.settings.detect_target())
        self.action = menu.addAction("Detect &on…", self.ask)
        self.action.setStatusTip("Detect on this computer or on a detection server (URL and token)")
        window.models.changed.connect(self._after_models_changed)
        self.apply(self.target, save=False)

    def ask(self) -> None:
        """Open the dialog; an accepted choice is applied and remembered."""
        dialog = DetectTargetDialog(self.target, self.window.pool, self.window)
        if dialog.exec() == QDialog.DialogCode.Accepted:
            self.apply(dialog.target())

    def apply(self, target: DetectTarget, save: bool = True) -> None:
        """Use ``target`` for the next Detect (the detector is built then, in the worker thread)."""
        self.target = target
        if save:
            self.window.settings.set_detect_target(target.to_settings())
            self.window.settings.sync()
        if self.window.models_drive_detect:
            if target.on_server:
                # the server's models decide the demo note once it answers (DetectorProvider.get)
                self.window.provider.reset(remote_detector_factory(target), demo=False)
            else:
                choice = self.window.models.choice
                self.window.provider.reset(detector_factory(choice), demo=choice.any_demo)
        self.action.setText(f"Detect &on… ({target.describe()})")
        self.window.statusBar().showMessage(f"Detect runs on {target.describe()}.", 5000)

    @Slot(object)
    def _after_models_changed(self, choice: object) -> None:
        if self.target.on_server and self.window.models_drive_detect:
            self.window.provider.reset(remote_detector_factory(self.target), demo=False)
