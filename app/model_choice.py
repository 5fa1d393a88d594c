"""Which checkpoints Detect uses: the shipped demo weights, a training run's best checkpoint, or any file.

:class:`ModelChoice` names one checkpoint per role (segmentation, nodule
classifier, malignancy); ``None`` means the demo weights in
``resources/models``. It is saved in the settings as plain paths, described
for the status bar, and turned into a detector factory that the detect
worker calls in its own thread (torch is never imported here at module
level). Qt-free.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping

from engine.choices import MODEL_ROLES
from engine.run_layout import RunLayout

if TYPE_CHECKING:
    from engine.detection import Detector

#: Menu names of the roles.
ROLE_LABELS = {"segmentation": "Segmentation", "classifier": "Nodule classifier", "malignancy": "Malignancy"}
#: Status-bar abbreviations of the roles.
ROLE_SHORT = {"segmentation": "seg", "classifier": "nodule", "malignancy": "malignancy"}
#: The value saved for a role that uses the demo weights.
DEMO = "demo"


@dataclass(frozen=True)
class ModelChoice:
    """The checkpoint file of each role, or None for the demo weights.

    Args:
        segmentation: U-Net checkpoint.
        classifier: Nodule classifier checkpoint.
        malignancy: Malignancy classifier checkpoint.
    """

    segmentation: Path | None = None
    classifier: Path | None = None
    malignancy: Path | None = None

    def path(self, role: str) -> Path | None:
        """The file chosen for ``role`` (None: demo weights)."""
        _check_role(role)
        return getattr(self, role)

    def with_path(self, role: str, path: str | Path | None) -> ModelChoice:
        """A copy with ``role`` set to ``path`` (None: demo weights)."""
        _check_role(role)
        return replace(self, **{role: None if path is None else Path(path)})

    @property
    def all_demo(self) -> bool:
        """True when every role uses the demo weights."""
        return all(self.path(role) is None for role in MODEL_ROLES)

    @property
    def any_demo(self) -> bool:
        """True when at least one role uses the demo weights (results then carry the demo disclaimer)."""
        return any(self.path(role) is None for role in MODEL_ROLES)

    def missing(self) -> list[str]:
        """Roles whose chosen file no longer exists."""
        return [role for role in MODEL_ROLES if (p := self.path(role)) is not None and not p.is_file()]

    def without_missing(self) -> ModelChoice:
        """A copy in which roles whose file is gone use the demo weights again."""
        choice = self
        for role in self.missing():
            choice = choice.with_path(role, None)
        return choice

    # --- settings -------------------------------------------------------------------------
    def to_settings(self) -> dict[str, str]:
        """``{role: path or "demo"}`` for :meth:`AppSettings.set_last_models`."""
        return {role: DEMO if (p := self.path(role)) is None else str(p) for role in MODEL_ROLES}

    @classmethod
    def from_settings(cls, values: Mapping[str, str]) -> ModelChoice:
        """Rebuild from :meth:`to_settings` output; unknown roles and empty values are ignored."""
        paths = {role: Path(str(values[role])) for role in MODEL_ROLES if values.get(role) not in (None, "", DEMO)}
        return cls(**paths)

    # --- words ------------------------------------------------------------------------------
    def describe(self, role: str) -> str:
        """``"demo"``, ``"run NAME (best)"`` for a training run's checkpoint, else the file name."""
        path = self.path(role)
        if path is None:
            return DEMO
        run = run_of_checkpoint(path)
        return f"run {run} ({path.stem})" if run else path.name

    def summary(self) -> str:
        """The status bar's text, e.g. ``"Models: demo"`` or ``"Models: seg run-a (best) · nodule demo · ..."``."""
        if self.all_demo:
            return "Models: demo"
        return "Models: " + " · ".join(f"{ROLE_SHORT[role]} {self.describe(role)}" for role in MODEL_ROLES)

    def tooltip(self) -> str:
        """One line per role with the full path."""
        return "\n".join(f"{ROLE_LABELS[role]}: {self.path(role) or 'demo weights (resources/models)'}" for role in MODEL_ROLES)


def run_of_checkpoint(path: Path) -> str | None:
    """The run name when ``path`` is ``<run>/checkpoints/<file>`` of a training run folder, else None."""
    layout = RunLayout.of_checkpoint(path)
    return layout.root.name if layout is not None else None


def _check_role(role: str) -> None:
    if role not in MODEL_ROLES:
        raise ValueError(f"unknown model role {role!r}; expected one of {', '.join(MODEL_ROLES)}")


#: Environment variable choosing the runtime of the viewer's Detect (``torch``, ``onnx`` or ``auto``).
BACKEND_VARIABLE = "LUNGCAD_BACKEND"


def detect_backend() -> str:
    """The viewer's Detect backend: ``$LUNGCAD_BACKEND`` when it names one of the engine's backends, else ``torch``."""
    from engine.detection.settings import BACKENDS  # torch-free

    chosen = os.environ.get(BACKEND_VARIABLE, "").strip().lower()
    return chosen if chosen in BACKENDS else "torch"


def detector_factory(choice: ModelChoice, device: str = "auto", backend: str | None = None) -> Callable[[], Detector]:
    """A callable building the engine's ``Detector`` for ``choice`` (call it off the GUI thread).

    Roles left on the demo weights take them from ``resources/models``
    (``Detector.from_checkpoints`` names any file that is missing).

    Args:
        choice: The checkpoint of each role.
        device: Where the models run.
        backend: ``torch``, ``onnx`` or ``auto`` (None: :func:`detect_backend`).
    """
    chosen = backend or detect_backend()

    def build() -> Detector:
        from engine.detection import Detector, DetectorConfig  # imports torch: in the worker thread

        return Detector.from_checkpoints(
            choice.segmentation, choice.classifier, choice.malignancy, device=device, config=DetectorConfig(backend=chosen)
        )

    return build


def check_checkpoint(path: str | Path, role: str) -> str:
    """Load ``path`` as the model of ``role`` (weights only, on the CPU) and describe it.

    Call it off the GUI thread: it imports torch.

    Returns:
        E.g. ``"classifier:1a2b3c4d5e, epoch 3"``.

    Raises:
        CheckpointKindError: the file holds another kind of model.
        CheckpointError: the file is missing, unreadable or unsafe.
    """
    from engine.checkpoints import load_checkpoint

    _check_role(role)
    checkpoint = load_checkpoint(path, expected_kind=role)
    epoch = checkpoint.metadata.get("epoch") if isinstance(checkpoint.metadata, Mapping) else None
    source = "book .state" if checkpoint.source_format == "book" else (f"epoch {epoch}" if epoch is not None else "")
    return checkpoint.model_id + (f", {source}" if source else "")
