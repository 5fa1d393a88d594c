"""What each exported model takes and returns: names, shapes, dynamic axes, preprocessing.

The manifest, the ONNX Runtime wrappers and the server read the same
description. Shapes use names for the dynamic axes (``batch``, ``height``,
``width``) and integers for the fixed ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.crops import CLASSIFIER_CROP, CONTEXT_SLICES, HU_MAX, HU_MIN

#: ONNX opset the exporter targets.
OPSET = 18
#: Largest batch the exported programs are declared for (ONNX itself is unbounded).
MAX_BATCH = 4096
#: Largest height/width of a segmentation input, in voxels.
MAX_SIDE = 4096


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of an exported model.

    Args:
        name: Tensor name in the ONNX graph (and the manifest).
        shape: Axis sizes; a string names a dynamic axis.
        meaning: What the values are, in words.
    """

    name: str
    shape: tuple[int | str, ...]
    meaning: str

    def to_json(self) -> dict[str, Any]:
        """Plain-value form for the manifest, with the dynamic axes listed by index."""
        return {
            "name": self.name,
            "dtype": "float32",
            "shape": list(self.shape),
            "dynamic_axes": {str(i): axis for i, axis in enumerate(self.shape) if isinstance(axis, str)},
            "meaning": self.meaning,
        }


@dataclass(frozen=True)
class ModelSpec:
    """Inputs, outputs and preprocessing of one model kind.

    Args:
        kind: ``"segmentation"``, ``"classifier"`` or ``"malignancy"``.
        inputs: The single input.
        outputs: The outputs in order.
        preprocessing: How a CT becomes the input, in words (SPEC §1.3).
        probability_output: Index of the output holding probabilities (compared by the checks).
    """

    kind: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    preprocessing: str
    probability_output: int

    @property
    def input_name(self) -> str:
        """Name of the (single) input tensor."""
        return self.inputs[0].name

    @property
    def output_names(self) -> list[str]:
        """Names of the outputs, in order."""
        return [spec.name for spec in self.outputs]

    def to_json(self, size_multiple: int | None = None) -> dict[str, Any]:
        """Plain-value form for the manifest."""
        out: dict[str, Any] = {
            "inputs": [spec.to_json() for spec in self.inputs],
            "outputs": [spec.to_json() for spec in self.outputs],
            "hu_clip": [HU_MIN, HU_MAX],
            "preprocessing": self.preprocessing,
        }
        if size_multiple is not None:
            out["size_multiple"] = size_multiple
        return out


def segmentation_spec(in_channels: int = 2 * CONTEXT_SLICES + 1) -> ModelSpec:
    """The segmentation model's interface (``in_channels`` context slices in, one probability map out)."""
    return ModelSpec(
        kind="segmentation",
        inputs=(TensorSpec("slices", ("batch", in_channels, "height", "width"),
                           "context stacks: slice k-3..k+3 as channels, HU as float32"),),
        outputs=(TensorSpec("probability", ("batch", 1, "height", "width"), "nodule probability of slice k"),),
        preprocessing=(
            f"{in_channels} consecutive slices centred on the one segmented (edge slices repeated), "
            f"HU clipped to [{HU_MIN}, {HU_MAX}], float32. ONNX and torch.export files take height and width "
            "in multiples of size_multiple (pad by repeating the edge, crop the output back; "
            "engine.deploy.onnx_runtime does it); the TorchScript file takes any size"
        ),
        probability_output=0,
    )


def classifier_spec(kind: str = "classifier") -> ModelSpec:
    """The nodule (or malignancy) classifier's interface: crops in, logits and softmax out."""
    positive = "nodule" if kind == "classifier" else "malignant"
    return ModelSpec(
        kind=kind,
        inputs=(TensorSpec("crops", ("batch", 1, *CLASSIFIER_CROP), "CT crops (index, row, col), HU as float32"),),
        outputs=(
            TensorSpec("logits", ("batch", 2), f"class logits; column 1 = {positive}"),
            TensorSpec("probabilities", ("batch", 2), f"softmax of the logits; column 1 = p_{positive}"),
        ),
        preprocessing=(
            f"{CLASSIFIER_CROP} voxel crop centred on the candidate (start = round(c - w/2), shifted inside "
            f"the volume, padded with -1000 HU), HU clipped to [{HU_MIN}, {HU_MAX}], float32"
        ),
        probability_output=1,
    )


def spec_for(kind: str, in_channels: int | None = None) -> ModelSpec:
    """The :class:`ModelSpec` of a model kind.

    Raises:
        ValueError: unknown kind.
    """
    if kind == "segmentation":
        return segmentation_spec(in_channels or 2 * CONTEXT_SLICES + 1)
    if kind in ("classifier", "malignancy"):
        return classifier_spec(kind)
    raise ValueError(f"unknown model kind {kind!r}")
