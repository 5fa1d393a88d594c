"""Names the engine accepts, in one torch-free place (the CLI, the viewer and the trainers read them here).

Nothing here imports torch, so building an argument parser or a settings form
does not load it.
"""

from __future__ import annotations

#: Where the models run: ``auto`` is CUDA when present, else Apple's MPS, else the CPU.
DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")
#: Floating-point type of inference: ``auto`` is float16 autocast on a GPU, float32 on the CPU.
PRECISION_CHOICES = ("auto", "float32", "bfloat16", "float16")
#: The three models of a detector, in pipeline order.
MODEL_ROLES = ("segmentation", "classifier", "malignancy")
#: File names of the demo weights in ``resources/models`` (``engine.paths.MODELS_DIR``), per role.
DEFAULT_WEIGHT_NAMES = {"segmentation": "segmentation.pt", "classifier": "classifier.pt", "malignancy": "malignancy.pt"}
#: Command-line option naming each role's checkpoint (analyze, evaluate, bench, mine-negatives).
MODEL_OPTIONS = {"segmentation": "--seg", "classifier": "--cls", "malignancy": "--mal"}
