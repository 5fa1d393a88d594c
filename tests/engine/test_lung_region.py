"""The cheap air/lung test that chooses the slices and window to segment."""

from __future__ import annotations

import numpy as np
import torch

from engine.detection.lung import block_means, find_lung_region, whole_volume
from engine.models import SegmentationModel
from tests.engine.fake_chest import small_chest


def test_lung_slices_and_window_of_a_small_chest():
    ct = small_chest()  # lungs on slices 6..23, 2 mm slices
    region = find_lung_region(ct.hu, ct.geometry.spacing_irc, margin_px=8)
    assert region.found
    # 5 mm margin = 3 slices each side
    assert region.slices[0] == 3 and region.slices[-1] == 26
    assert np.all(np.diff(region.slices) == 1)
    rows, cols = region.rows, region.cols
    assert rows.start % 4 == 0 and cols.start % 4 == 0
    # the lungs span rows 24..72 and columns 19..93; the window adds 8 pixels (less a block's rounding)
    assert rows.start <= 24 - 8 + 4 and rows.stop >= 72 + 8 - 4
    assert cols.start <= 19 - 8 + 4 and cols.stop >= 93 + 8 - 4
    assert cols.stop - cols.start < ct.shape[2], "the window leaves out air and body"
    lo, hi = region.box_irc()
    assert lo == (3, rows.start, cols.start) and hi == (27, rows.stop, cols.stop)
    assert "slices" in region.describe(ct.shape)


def test_no_lung_means_everything():
    hu = np.full((10, 40, 40), -1000, np.int16)
    hu[:, 10:30, 10:30] = 50  # body without lungs
    region = find_lung_region(hu, (2.0, 0.8, 0.8))
    assert not region.found
    expected = whole_volume(hu.shape)
    assert np.array_equal(region.slices, expected.slices) and region.rows == slice(0, 40)


def test_air_outside_the_field_of_view_is_not_lung():
    hu = np.full((6, 64, 64), -3024, np.int16)  # scanner padding
    hu[:, 8:56, 8:56] = -1000
    hu[:, 20:44, 20:44] = 40
    assert not find_lung_region(hu, (2.0, 0.7, 0.7)).found


def test_block_means_clip_and_average():
    hu = np.full((2, 8, 6), -3000, np.int16)
    hu[:, :4, :4] = 1000
    means = block_means(hu)
    assert means.shape == (2, 2, 2)
    assert means[0, 0, 0] == 1000 and means[0, 1, 0] == -1000
    assert means[0, 0, 1] == -1000  # a partial edge tile averages its own pixels


def test_window_output_equals_whole_slice_output_away_from_its_edges():
    """The window's start is on the pooling grid, so interior pixels are computed exactly alike."""
    torch.manual_seed(0)
    model = SegmentationModel().eval().double()  # float64: no summation-order noise
    x = torch.randn(1, 7, 128, 136, dtype=torch.float64) * 300 - 500
    with torch.inference_mode():
        whole = model(x)
        part = model(x[..., 32:96, 40:120])
    # the U-Net reaches 22 pixels; the detector's margin is 32
    torch.testing.assert_close(part[..., 22:-22, 22:-22], whole[..., 54:74, 62:98], atol=1e-12, rtol=0)
    assert (part[..., :16, :] - whole[..., 32:48, 40:120]).abs().max() > 1e-3


def test_windows_follow_the_lungs_slice_by_slice_and_fill_gaps():
    hu = np.full((30, 128, 128), 40, np.int16)
    hu[:, :4, :] = -1000
    hu[4:9, 40:60, 40:60] = -850  # small lung on slices 4..8
    hu[18:24, 20:100, 30:110] = -850  # big lung on slices 18..23; slices 9..17 hold none
    region = find_lung_region(hu, (2.0, 0.7, 0.7), margin_px=8)  # 5 mm = 3 slices
    assert region.slices[0] == 1 and region.slices[-1] == 26
    by_slice = dict(zip(region.slices.tolist(), region.windows.tolist()))
    assert by_slice[6] == [32, 68, 32, 68]
    assert by_slice[20] == [12, 108, 20, 120]
    assert by_slice[13] == [12, 108, 20, 120], "a slice far from any lung slice takes the union"
    assert by_slice[16] == by_slice[20] and by_slice[10] == by_slice[6]
    rows, cols = region.batch_window(0, region.slices.size)
    assert (rows, cols) == (region.rows, region.cols) == (slice(12, 108), slice(20, 120))
    assert region.voxel_count() < region.slices.size * 96 * 100


def test_air_like_material_outside_the_body_is_not_lung():
    """A foam table (-700 HU) under the patient does not widen the window; an open body outline keeps its lungs."""
    hu = np.full((8, 128, 128), -1000, np.int16)
    hu[:, 16:96, 16:112] = 40  # body
    hu[:, 28:84, 28:60] = -850  # right lung
    hu[:, 28:84, 68:100] = -850  # left lung
    hu[:, 104:120, 8:120] = -700  # table foam below the body, in the lung HU range
    hu[:, 102:104, 8:120] = 200  # its shell
    region = find_lung_region(hu, (2.0, 0.7, 0.7), margin_px=8)
    assert region.found
    assert region.rows.stop <= 84 + 8 + 4, "the table is left out"
    assert region.rows.start <= 28 - 8 + 4 and region.cols.stop >= 100 + 8 - 4
    # the body outline cut open by the edge of the field of view: the lungs are kept
    open_body = hu.copy()
    open_body[:, 40:60, 100:] = -850  # the left lung runs out of the body to the image edge
    open_body[:, 104:120] = -1000
    region = find_lung_region(open_body, (2.0, 0.7, 0.7), margin_px=8)
    assert region.found and region.cols.stop == 128 and region.rows.start <= 28 - 8 + 4
