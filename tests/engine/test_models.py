"""Shapes, parameter counts and book reference outputs of the three networks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from engine.models import NoduleClassifier, SegmentationModel, UNet

BOOK = Path(__file__).resolve().parents[2] / ".." / "shared" / "book"


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_classifier_has_the_books_parameter_count():
    assert n_params(NoduleClassifier()) == 222_220


def test_segmentation_model_has_about_118k_parameters():
    assert n_params(SegmentationModel()) == 118_271


@pytest.mark.parametrize("batch", [1, 3])
def test_classifier_shapes_and_softmax(batch):
    torch.manual_seed(0)
    model = NoduleClassifier().eval()
    with torch.inference_mode():
        logits, probs = model(torch.randn(batch, 1, 32, 48, 48))
    assert logits.shape == probs.shape == (batch, 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(batch))
    torch.testing.assert_close(probs, torch.softmax(logits, 1))


@pytest.mark.parametrize("conv_channels, expected_head", [(4, 576), (8, 1152), (16, 2304)])
def test_classifier_width_scales_the_head(conv_channels, expected_head):
    model = NoduleClassifier(conv_channels=conv_channels)
    assert model.head_linear.in_features == expected_head


@pytest.mark.parametrize(
    "shape",
    [(1, 7, 64, 64), (2, 7, 48, 80), (1, 7, 37, 50), (1, 7, 5, 3), (3, 7, 1, 1)],
)
def test_segmentation_any_in_plane_size(shape):
    torch.manual_seed(0)
    model = SegmentationModel().eval()
    with torch.inference_mode():
        out = model(torch.randn(shape))
    assert out.shape == (shape[0], 1, *shape[2:])
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_segmentation_padding_keeps_the_unpadded_part_local():
    """Padding to a multiple of 4 must not change pixels far from the padded edge."""
    torch.manual_seed(1)
    model = SegmentationModel().eval()
    x = torch.randn(1, 7, 96, 96)
    with torch.inference_mode():
        full = model(x)
        part = model(x[..., :94, :93])
    torch.testing.assert_close(part[..., :40, :40], full[..., :40, :40], atol=1e-5, rtol=0)


@pytest.mark.parametrize("depth, wf, size", [(1, 2, (9, 11)), (2, 3, (16, 16)), (3, 4, (32, 24)), (4, 3, (64, 40))])
def test_unet_depths(depth, wf, size):
    model = UNet(in_channels=7, n_classes=2, depth=depth, wf=wf).eval()
    with torch.inference_mode():
        out = model(torch.randn(2, 7, *size))
    assert out.shape == (2, 2, *size)


def test_unet_upsample_mode_and_bad_mode():
    model = UNet(up_mode="upsample").eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 7, 16, 16)).shape == (1, 1, 16, 16)
    with pytest.raises(ValueError, match="up_mode"):
        UNet(up_mode="nearest")


def test_unet_state_names_match_the_book_layout():
    keys = set(SegmentationModel().state_dict())
    assert "input_batchnorm.running_var" in keys
    assert "unet.down_path.2.block.5.running_mean" in keys
    assert "unet.up_path.0.up.weight" in keys
    assert "unet.up_path.1.conv_block.block.3.weight" in keys
    assert "unet.last.weight" in keys
    assert len(keys) == 81
    assert len(NoduleClassifier().state_dict()) == 23


def test_classifier_init_is_kaiming_fan_out():
    torch.manual_seed(0)
    model = NoduleClassifier()
    weight = model.block4.conv2.weight
    fan_out = weight.shape[0] * 27
    assert float(weight.detach().std()) == pytest.approx((2.0 / fan_out) ** 0.5, rel=0.05)


@pytest.fixture(scope="module")
def book_crop() -> torch.Tensor:
    example = BOOK / "cls_val_example.pt"
    if not example.exists():
        pytest.skip(f"book example {example} is absent (../shared/book is not on this machine)")
    crop, label, uid, center = torch.load(example, weights_only=True)
    return crop


def _book_state(name: str) -> dict:
    path = BOOK / name
    if not path.exists():
        pytest.skip(f"book checkpoint {path} is absent (../shared/book is not on this machine)")
    return torch.load(path, map_location="cpu", weights_only=True)["model_state"]


def test_book_classifier_reproduces_reference(book_crop):
    model = NoduleClassifier().eval()
    model.load_state_dict(_book_state("cls_book.best.state"), strict=True)
    with torch.inference_mode():
        logits, probs = model(book_crop[None])
    torch.testing.assert_close(logits[0], torch.tensor([8.665877, -10.436965]), atol=1e-4, rtol=0)
    assert float(probs[0, 1]) == pytest.approx(5.055e-09, rel=1e-3)


def test_book_segmentation_reproduces_reference(book_crop):
    model = SegmentationModel().eval()
    model.load_state_dict(_book_state("seg_book.best.state"), strict=True)
    x = torch.full((1, 7, 64, 64), -1000.0)
    x[0, :, 8:56, 8:56] = book_crop[0, 13:20]
    with torch.inference_mode():
        out = model(x)
    assert out.shape == (1, 1, 64, 64)
    assert float(out.mean()) == pytest.approx(0.217549, abs=1e-4)
    assert int((out > 0.5).sum()) == 894
    assert float(out[0, 0, 32, 32]) == pytest.approx(0.0, abs=1e-4)


def _randomise_batch_norms(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for bn in model.modules():
            if isinstance(bn, torch.nn.BatchNorm2d):
                bn.running_mean.uniform_(-1, 1)
                bn.running_var.uniform_(0.5, 2)
                bn.weight.uniform_(-2, 2)
                bn.bias.uniform_(-1, 1)


@pytest.mark.parametrize("depth, wf", [(1, 2), (2, 2), (3, 4)])
@pytest.mark.parametrize("shape", [(2, 7, 32, 32), (1, 7, 37, 50), (1, 7, 5, 3), (1, 7, 1, 1), (1, 7, 1, 9)])
def test_folded_segmentation_equals_the_model(depth, wf, shape):
    from engine.models.folded import FoldedSegmentation

    torch.manual_seed(depth)
    model = SegmentationModel(depth=depth, wf=wf).double().eval()
    _randomise_batch_norms(model)
    with torch.no_grad():
        model.input_batchnorm.running_mean.fill_(-500.0)
        model.input_batchnorm.running_var.fill_(400.0**2)
    folded = FoldedSegmentation(model)
    x = torch.randn(shape, dtype=torch.float64) * 400 - 500
    with torch.inference_mode():
        expected = torch.logit(model(x), eps=1e-300)
        got = torch.logit(folded(x), eps=1e-300)
    torch.testing.assert_close(got, expected, atol=1e-9, rtol=1e-9)


def test_what_can_be_folded():
    from engine.models.folded import FoldedSegmentation, can_fold

    class Custom(SegmentationModel):
        pass

    assert can_fold(SegmentationModel())
    assert not can_fold(Custom())
    assert not can_fold(SegmentationModel(up_mode="upsample"))
    assert not can_fold(SegmentationModel(batch_norm=False))
    with pytest.raises(ValueError, match="folded"):
        FoldedSegmentation(SegmentationModel(batch_norm=False))


def test_folded_book_segmentation_reproduces_reference(book_crop):
    from engine.models.folded import FoldedSegmentation

    model = SegmentationModel().eval()
    model.load_state_dict(_book_state("seg_book.best.state"), strict=True)
    folded = FoldedSegmentation(model)
    x = torch.full((1, 7, 64, 64), -1000.0)
    x[0, :, 8:56, 8:56] = book_crop[0, 13:20]
    with torch.inference_mode():
        out = folded(x)
    assert float(out.mean()) == pytest.approx(0.217549, abs=1e-4)
    assert int((out > 0.5).sum()) == 894
