"""The three models of a detector from modules, loaded checkpoints or checkpoint files.

:func:`load_models` turns what :class:`~engine.detection.Detector` is given
into the three models in eval mode with their weight ids, checking that each
is the kind of model its role needs.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from engine.checkpoints import Checkpoint, load_checkpoint, model_weights_id
from engine.choices import MODEL_ROLES
from engine.errors import CheckpointError
from engine.models.classifier import NoduleClassifier
from engine.models.segmentation import SegmentationModel

#: What a detector accepts for each of its models.
ModelSource = nn.Module | Checkpoint | str | Path
#: The model class each role needs.
ROLE_CLASSES: dict[str, type[nn.Module]] = {
    "segmentation": SegmentationModel,
    "classifier": NoduleClassifier,
    "malignancy": NoduleClassifier,
}
#: Roles whose checkpoints stand in for each other (both are nodule classifiers).
_CLASSIFIER_ROLES = ("classifier", "malignancy")


def load_models(sources: dict[str, ModelSource]) -> tuple[dict[str, nn.Module], dict[str, str]]:
    """The models of ``sources`` (``{role: source}``, every role of :data:`~engine.choices.MODEL_ROLES`).

    Returns:
        ``({role: model in eval mode}, {role: weight id})``.

    Raises:
        CheckpointError (and subclasses): a checkpoint cannot be used, or a model
            is not the class its role needs.
        TypeError: a source is none of the accepted forms.
    """
    models: dict[str, nn.Module] = {}
    ids: dict[str, str] = {}
    for role in MODEL_ROLES:
        model, ids[role] = as_model(sources[role], role)
        needed = ROLE_CLASSES[role]
        if not isinstance(model, needed):
            raise CheckpointError(f"the {role} model must be a {needed.__name__}, got {type(model).__name__}")
        models[role] = model.eval()
    return models, ids


def as_model(source: ModelSource, role: str) -> tuple[nn.Module, str]:
    """The module of ``source`` and its weight id (named after ``role``).

    Raises:
        CheckpointError (and subclasses): the checkpoint cannot be read or holds another kind of model.
        TypeError: ``source`` is none of the accepted forms.
    """
    if isinstance(source, (str, Path)):
        source = load_checkpoint(source, expected_kind=role)
    if isinstance(source, Checkpoint):
        if source.kind != role and not (source.kind in _CLASSIFIER_ROLES and role in _CLASSIFIER_ROLES):
            raise CheckpointError(f"a {source.kind} checkpoint was given as the {role} model", source.path)
        return source.model, source.model_id.replace(source.kind, role, 1)
    if isinstance(source, nn.Module):
        return source, model_weights_id(source, role)
    raise TypeError(f"the {role} model must be an nn.Module, a Checkpoint or a path, got {type(source).__name__}")
