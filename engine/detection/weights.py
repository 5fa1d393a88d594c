"""Which checkpoint files a detector is built from: the given ones, the demo weights for the rest (torch-free).

The demo weights ship in ``resources/models`` (:data:`engine.paths.MODELS_DIR`)
under :data:`engine.choices.DEFAULT_WEIGHT_NAMES`. :func:`checkpoint_paths` is
the one place that fills in the demo weights and says, in one message, which
file is missing.
"""

from __future__ import annotations

from pathlib import Path

from engine import paths
from engine.choices import DEFAULT_WEIGHT_NAMES, MODEL_OPTIONS, MODEL_ROLES
from engine.errors import CheckpointError


def default_weight_paths() -> dict[str, Path]:
    """``{role: path}`` of the demo weights in ``resources/models``, in :data:`~engine.choices.MODEL_ROLES` order."""
    return {role: paths.MODELS_DIR / DEFAULT_WEIGHT_NAMES[role] for role in MODEL_ROLES}


def checkpoint_paths(
    segmentation: str | Path | None = None,
    classifier: str | Path | None = None,
    malignancy: str | Path | None = None,
) -> dict[str, Path]:
    """The checkpoint file of each role: the one given, or the demo weights for None.

    Args:
        segmentation: Segmentation checkpoint (ours or the book's ``.state``), or None.
        classifier: Nodule classifier checkpoint, or None.
        malignancy: Malignancy classifier checkpoint, or None.

    Returns:
        ``{role: path}`` in :data:`~engine.choices.MODEL_ROLES` order; every file exists.

    Raises:
        CheckpointError: a file (given or demo) does not exist; the message names
            each missing role and path and says how to get one.
    """
    given = {"segmentation": segmentation, "classifier": classifier, "malignancy": malignancy}
    demo = default_weight_paths()
    chosen = {role: demo[role] if given[role] is None else Path(given[role]) for role in MODEL_ROLES}
    missing = {role: path for role, path in chosen.items() if not path.is_file()}
    if missing:
        raise CheckpointError(missing_message(missing))
    return chosen


def missing_message(missing: dict[str, Path]) -> str:
    """The error text for missing checkpoint files ``{role: path}``."""
    files = "; ".join(f"the {role} model {path}" for role, path in missing.items())
    options = "/".join(MODEL_OPTIONS[role] for role in missing)
    return (
        f"missing checkpoint file: {files}. Give your own ({options} on the command line, Models in the viewer; "
        f"the book's .state files work too); the demo weights in {paths.MODELS_DIR} are trained on synthetic "
        "phantoms with `python main.py train` (README: Training)"
    )
