"""One synthetic patient's anatomical measurements, drawn from a seed.

All lengths are millimetres in the *patient frame*: ``x`` towards the patient's
left, ``y`` posterior, ``z`` superior (LPS axes), with ``x = 0`` on the
midline, ``y = 0`` at the middle of the body's antero-posterior depth and
``z = 0`` at the top of the right hemidiaphragm. The frame is placed in the
scanner (LPS world coordinates) by :class:`engine.phantom.config.Frame`.

The ranges follow adult chest anatomy: chest width 290–370 mm, depth
190–240 mm, lung height 190–265 mm from dome to apex (inspiration depth).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PatientParams:
    """Anatomical measurements of one patient (mm, patient frame).

    Body outline (a super-ellipse, flatter on the back where the patient lies):
        body_a: half width. body_b_ant / body_b_post: anterior / posterior half depth.
        body_p_ant / body_p_post: super-ellipse exponents front / back.
        body_harmonics: ``(k, amplitude, phase)`` ripples of the outline.
    Chest wall (thicknesses along rays from the body axis):
        skin, fat_front, fat_side, fat_back, muscle_pec, muscle_side, muscle_back,
        muscle_paraspinal, rib_layer.
    Vertical extent:
        lung_height: right dome top (z = 0) to the right apex.
        apex_left_drop: how much lower the left apex is.
        dome_left_drop: how much lower the left hemidiaphragm is.
        dome_side_drop / dome_back_drop: how far the diaphragm falls towards the
            lateral / posterior costophrenic recesses.
        recess_depth: lowest lung point below z = 0 (positive number).
        carina_z: height of the tracheal bifurcation.
        margin_below / margin_above: scanned length below the recesses / above the apex.
    Mediastinum and heart:
        med_wx_upper / med_wx_lower: half width of the mediastinal core above / below the carina.
        med_wy: half depth of the core; med_y: its centre.
        junction: half width of the antero-posterior junction band between the lungs.
        heart_center: ``(x, y)`` of the heart; heart_axes: its semi-axes ``(x, y, z)``.
    Spine and sternum:
        vertebra_ax / vertebra_ay: vertebral body semi-axes; vertebra_period: one
        vertebra plus disc along z; disc: disc thickness; vertebra_phase: z offset.
        kyphosis: antero-posterior bow of the spine over the scan.
        sternum_length, sternum_top_below_apex.
    Other:
        table_gap, table_thickness, table_curvature: the scanner table under the back.
        has_table: whether a table is in the field of view.
        lung_scale: overall lung size factor (inspiration), 0.9–1.1.
    """

    body_a: float
    body_b_ant: float
    body_b_post: float
    body_p_ant: float
    body_p_post: float
    body_harmonics: tuple[tuple[int, float, float], ...]
    skin: float
    fat_front: float
    fat_side: float
    fat_back: float
    muscle_pec: float
    muscle_side: float
    muscle_back: float
    muscle_paraspinal: float
    rib_layer: float
    lung_height: float
    apex_left_drop: float
    dome_left_drop: float
    dome_side_drop: float
    dome_back_drop: float
    recess_depth: float
    carina_z: float
    margin_below: float
    margin_above: float
    med_wx_upper: float
    med_wx_lower: float
    med_wy: float
    med_y: float
    junction: float
    heart_center: tuple[float, float]
    heart_axes: tuple[float, float, float]
    vertebra_ax: float
    vertebra_ay: float
    vertebra_period: float
    disc: float
    vertebra_phase: float
    kyphosis: float
    sternum_length: float
    sternum_top_below_apex: float
    table_gap: float
    table_thickness: float
    table_curvature: float
    has_table: bool
    lung_scale: float

    @property
    def body_width(self) -> float:
        """Skin-to-skin width of the chest (mm)."""
        return 2.0 * self.body_a

    @property
    def scan_bottom_z(self) -> float:
        """Lowest scanned z in the patient frame (mm)."""
        return -self.recess_depth - self.margin_below

    @property
    def scan_top_z(self) -> float:
        """Highest scanned z in the patient frame (mm)."""
        return self.lung_height + self.margin_above


def sample_patient(rng: np.random.Generator) -> PatientParams:
    """Draw one adult patient's anatomy.

    Args:
        rng: The random stream for anatomy.

    Returns:
        The patient's :class:`PatientParams`.
    """
    u = rng.uniform
    size = u(0.0, 1.0)  # small .. large build, correlates widths and depths
    obesity = u(0.3, 1.6)
    body_a = 148.0 + 34.0 * size + u(-6.0, 6.0) + 4.0 * (obesity - 1.0)
    body_b_ant = 100.0 + 20.0 * size + u(-6.0, 6.0) + 5.0 * (obesity - 1.0)
    body_b_post = 96.0 + 16.0 * size + u(-5.0, 5.0) + 3.0 * (obesity - 1.0)
    harmonics = tuple((k, float(u(0.004, 0.018)), float(u(0.0, 2 * np.pi))) for k in (2, 3, 4, 5))
    lung_scale = u(0.9, 1.1)
    lung_height = (205.0 + 40.0 * size + u(-18.0, 18.0)) * lung_scale
    heart_axes = (u(50.0, 63.0), u(40.0, 50.0), u(46.0, 58.0))
    return PatientParams(
        body_a=float(body_a),
        body_b_ant=float(body_b_ant),
        body_b_post=float(body_b_post),
        body_p_ant=float(u(1.9, 2.15)),
        body_p_post=float(u(2.3, 2.8)),
        body_harmonics=harmonics,
        skin=float(u(1.5, 2.3)),
        fat_front=float(u(3.0, 10.0) * obesity),
        fat_side=float(u(5.0, 14.0) * obesity),
        fat_back=float(u(5.0, 12.0) * obesity),
        muscle_pec=float(u(8.0, 18.0)),
        muscle_side=float(u(5.0, 10.0)),
        muscle_back=float(u(8.0, 14.0)),
        muscle_paraspinal=float(u(28.0, 38.0)),
        rib_layer=float(u(9.0, 12.0)),
        lung_height=float(lung_height),
        apex_left_drop=float(u(0.0, 8.0)),
        dome_left_drop=float(u(10.0, 24.0)),
        dome_side_drop=float(u(30.0, 45.0)),
        dome_back_drop=float(u(45.0, 65.0)),
        recess_depth=float(u(55.0, 75.0)),
        carina_z=float(lung_height * u(0.52, 0.6)),
        margin_below=float(u(5.0, 25.0)),
        margin_above=float(u(5.0, 22.0)),
        med_wx_upper=float(u(24.0, 30.0)),
        med_wx_lower=float(u(15.0, 20.0)),
        med_wy=float(u(50.0, 58.0)),
        med_y=float(u(-12.0, -2.0)),
        junction=float(u(2.5, 6.0)),
        heart_center=(float(u(24.0, 38.0)), float(u(-32.0, -20.0))),
        heart_axes=heart_axes,
        vertebra_ax=float(u(17.0, 21.0)),
        vertebra_ay=float(u(13.0, 16.0)),
        vertebra_period=float(u(24.0, 28.0)),
        disc=float(u(4.0, 6.0)),
        vertebra_phase=float(u(0.0, 28.0)),
        kyphosis=float(u(4.0, 14.0)),
        sternum_length=float(u(150.0, 185.0)),
        sternum_top_below_apex=float(u(25.0, 45.0)),
        table_gap=float(u(0.0, 3.0)),
        table_thickness=float(u(10.0, 22.0)),
        table_curvature=float(u(0.0006, 0.0016)),
        has_table=bool(u() < 0.92),
        lung_scale=float(lung_scale),
    )
