"""Compute devices and the mixed-precision policy of inference.

``resolve_device("auto")`` picks CUDA when present, else Apple's MPS, else the
CPU. :func:`precision_policy` decides in which floating-point type the models
run: float16 autocast on CUDA (and MPS); on the CPU float32, or bfloat16 when
asked for and the processor computes it natively (AVX512-BF16/AMX), where it
is about twice as fast (see docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch

from engine.choices import DEVICE_CHOICES, PRECISION_CHOICES
from engine.errors import DeviceError


def mps_available() -> bool:
    """True when PyTorch can use Apple's Metal (MPS) backend."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a device name into an available :class:`torch.device`.

    Args:
        name: ``"auto"`` (CUDA, else MPS, else CPU), ``"cpu"``, ``"cuda"``,
            ``"cuda:N"``, ``"mps"``, or a ``torch.device``.

    Returns:
        The device.

    Raises:
        DeviceError: the device named is not available on this machine.
    """
    if isinstance(name, torch.device):
        name = str(name)
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} was requested but this PyTorch ({torch.__version__}) sees no CUDA GPU; "
                "use --device cpu or auto"
            )
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
        return device
    if name == "mps":
        if not mps_available():
            raise DeviceError("device 'mps' was requested but Apple's MPS backend is not available")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}; choose one of {', '.join(DEVICE_CHOICES)}")


def cpu_bf16_native() -> bool:
    """True when the CPU computes bfloat16 convolutions natively (oneDNN with AVX512-BF16 or AMX)."""
    checker = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(checker()) if checker is not None else False
    except RuntimeError:
        return False


@dataclass(frozen=True)
class PrecisionPolicy:
    """How the models run on one device.

    Args:
        device: Where the models run.
        autocast_dtype: The reduced type for autocast, or ``None`` for plain float32.
        channels_last: Use channels-last memory layout (faster convolutions on CPU/CUDA).
    """

    device: torch.device
    autocast_dtype: torch.dtype | None
    channels_last: bool

    @property
    def name(self) -> str:
        """``"float32"``, ``"bfloat16"`` or ``"float16"``."""
        return "float32" if self.autocast_dtype is None else str(self.autocast_dtype).removeprefix("torch.")

    def autocast(self) -> contextlib.AbstractContextManager:
        """A context manager running the enclosed forward passes in this precision."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)


def precision_policy(device: torch.device, precision: str = "auto") -> PrecisionPolicy:
    """Choose the floating-point type for inference on ``device``.

    Args:
        device: The device the models run on.
        precision: ``"auto"`` (float16 on CUDA/MPS, float32 on CPU), ``"float32"``,
            ``"bfloat16"`` (CPU: only where native, else float32) or ``"float16"``
            (GPU only).

    Returns:
        The policy.

    Raises:
        DeviceError: ``precision`` is unknown, or float16 was asked for on the CPU.
    """
    if precision not in PRECISION_CHOICES:
        raise DeviceError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISION_CHOICES)}")
    gpu = device.type in ("cuda", "mps")
    if precision == "auto":
        dtype = torch.float16 if gpu else None
    elif precision == "float32":
        dtype = None
    elif precision == "bfloat16":
        if gpu:
            dtype = torch.bfloat16
        else:
            dtype = torch.bfloat16 if cpu_bf16_native() else None
    else:
        if not gpu:
            raise DeviceError("float16 inference needs a GPU; on the CPU use float32 or bfloat16")
        dtype = torch.float16
    return PrecisionPolicy(device=device, autocast_dtype=dtype, channels_last=device.type in ("cpu", "cuda"))


def is_out_of_memory(exc: BaseException) -> bool:
    """True when ``exc`` reports that a device (or the host) ran out of memory."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        return "out of memory" in text or "can't allocate memory" in text
    return False


def release_cached_memory(device: torch.device) -> None:
    """Give the caching allocator's free blocks back after an out-of-memory error."""
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif device.type == "mps" and mps_available():
        torch.mps.empty_cache()


@contextlib.contextmanager
def cpu_threads(count: int | None) -> Iterator[None]:
    """Run the enclosed block with ``count`` intra-op CPU threads (``None``: unchanged)."""
    if count is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(max(1, int(count)))
    try:
        yield
    finally:
        torch.set_num_threads(before)
