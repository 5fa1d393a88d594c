"""The three networks of the pipeline, one per module.

* :class:`~engine.models.classifier.NoduleClassifier` — the nodule classifier,
  also used (fine-tuned) as the malignancy classifier.
* :class:`~engine.models.unet.UNet` — the 2D U-Net body.
* :class:`~engine.models.segmentation.SegmentationModel` — input BatchNorm →
  U-Net → sigmoid, the segmentation model the detector runs.
"""

from __future__ import annotations

from engine.models.classifier import NoduleClassifier
from engine.models.segmentation import SegmentationModel
from engine.models.unet import UNet

__all__ = ["NoduleClassifier", "SegmentationModel", "UNet"]
