"""Tissue classes of the phantom and their Hounsfield values.

Every voxel of a phantom gets one tissue label (``uint8``); the label map is
part of the ground truth (tests measure HU statistics per tissue from it). The
HU of each tissue is drawn per patient inside the range a non-contrast chest
CT shows (PHANTOM.md "Tissue values").
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Tissue(IntEnum):
    """Label values of the phantom's tissue map (``uint8``)."""

    AIR = 0  #: outside the body, and gas in the stomach
    TABLE = 1  #: the scanner table
    SKIN = 2
    FAT = 3  #: subcutaneous, mediastinal and abdominal fat
    MUSCLE = 4  #: chest-wall and paraspinal muscles, diaphragm, oesophagus, neck
    LUNG = 5  #: lung parenchyma
    VESSEL = 6  #: blood: pulmonary and great vessels
    HEART = 7
    AIRWAY_LUMEN = 8  #: air inside trachea and bronchi
    AIRWAY_WALL = 9
    BONE_CORTICAL = 10
    BONE_TRABECULAR = 11
    CARTILAGE = 12  #: costal cartilage, intervertebral discs
    CSF = 13  #: spinal canal
    LIVER = 14
    SPLEEN = 15
    STOMACH = 16  #: stomach wall and fluid
    KIDNEY = 17
    NODULE = 18  #: an annotated nodule (solid, part-solid or ground-glass)
    FINDING = 19  #: an excluded ("irrelevant") finding: tiny nodule, granuloma, scar


#: Number of label values (size of per-label lookup tables).
N_TISSUES = len(Tissue)

#: Typical HU range per tissue, (low, high): each patient draws its value inside.
HU_RANGES: dict[Tissue, tuple[float, float]] = {
    Tissue.AIR: (-1000.0, -1000.0),
    Tissue.TABLE: (-600.0, -350.0),  # foam core; the shell is drawn denser
    Tissue.SKIN: (10.0, 40.0),
    Tissue.FAT: (-115.0, -90.0),
    Tissue.MUSCLE: (35.0, 55.0),
    Tissue.LUNG: (-875.0, -835.0),
    Tissue.VESSEL: (32.0, 48.0),
    Tissue.HEART: (32.0, 45.0),
    Tissue.AIRWAY_LUMEN: (-1000.0, -990.0),
    Tissue.AIRWAY_WALL: (60.0, 120.0),
    Tissue.BONE_CORTICAL: (750.0, 1150.0),
    Tissue.BONE_TRABECULAR: (180.0, 320.0),
    Tissue.CARTILAGE: (80.0, 140.0),
    Tissue.CSF: (5.0, 18.0),
    Tissue.LIVER: (50.0, 66.0),
    Tissue.SPLEEN: (40.0, 52.0),
    Tissue.STOMACH: (10.0, 30.0),
    Tissue.KIDNEY: (25.0, 38.0),
    Tissue.NODULE: (-50.0, 60.0),
    Tissue.FINDING: (-30.0, 60.0),
}


@dataclass(frozen=True)
class TissueValues:
    """One patient's HU per tissue.

    Args:
        hu: ``float32`` array of length :data:`N_TISSUES`, HU indexed by label.
        table_shell_hu: HU of the dense shell of the scanner table.
        lung_gravity_hu: Extra density of the most dependent (posterior) lung.
        lung_texture_hu: Standard deviation of the smooth parenchymal texture.
    """

    hu: np.ndarray
    table_shell_hu: float
    lung_gravity_hu: float
    lung_texture_hu: float

    def __getitem__(self, tissue: Tissue) -> float:
        return float(self.hu[int(tissue)])


def sample_tissue_values(rng: np.random.Generator) -> TissueValues:
    """Draw one patient's HU per tissue inside :data:`HU_RANGES`.

    Args:
        rng: The random stream for tissue values.

    Returns:
        The patient's :class:`TissueValues`.
    """
    hu = np.zeros(N_TISSUES, dtype=np.float32)
    for tissue in Tissue:
        low, high = HU_RANGES[tissue]
        hu[int(tissue)] = rng.uniform(low, high)
    hu.flags.writeable = False
    return TissueValues(
        hu=hu,
        table_shell_hu=float(rng.uniform(150.0, 450.0)),
        lung_gravity_hu=float(rng.uniform(25.0, 90.0)),
        lung_texture_hu=float(rng.uniform(8.0, 18.0)),
    )
