"""Mixed precision for every loop: one :class:`Precision` per run, called in a few lines per step.

``train.amp`` / ``search.amp`` name the mode: ``off`` (float32), ``bf16``, ``fp16`` or ``auto``
(bf16 on a CUDA device that supports it, float32 elsewhere: on CPU bf16 is slower than float32 on
most cores and is only worth it for tests). What torch already gives, and what this adds:

- ``torch.autocast`` runs convolutions and matrix products in the low precision; this module
  applies it only around a model's forward pass (:meth:`Precision.autocast`), never around the
  losses a loop builds itself (the α step's softmax and cost term stay float32);
- a detector's loss is computed from its head's outputs inside the model's forward, so
  :meth:`Precision.prepare` hooks the ``head`` (torchvision's SSD and RetinaNet name it so) to
  hand float32 outputs on: box regression, the classification loss, hard-negative mining and box
  decoding then run in float32, only the network in the low precision;
- fp16 needs loss scaling (its range ends at 65504, gradients underflow):
  ``torch.amp.GradScaler``, whose state travels in checkpoints (:meth:`state_dict`), so a resumed
  run scales as the uninterrupted one did. bf16 has float32's range and needs none.

A loop calls ``backward``/``step`` instead of ``loss.backward()``/``optimizer.step()`` and
``grad`` instead of ``torch.autograd.grad``; with ``off`` they are exactly those calls.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

from netadapt.config import AMP_MODES

DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_amp(setting: str, device: torch.device) -> str:
    """``auto`` → ``bf16`` on a CUDA device that supports it, ``off`` elsewhere; other modes as given."""
    if setting not in AMP_MODES:
        raise ValueError(f"amp must be one of {', '.join(AMP_MODES)}, got {setting!r}")
    if setting != "auto":
        return setting
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return "bf16"
    return "off"


class Precision:
    """The precision of one run on one device (``mode``: ``off``, ``bf16`` or ``fp16``)."""

    def __init__(self, setting: str = "off", device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.mode = resolve_amp(setting, self.device)
        self.dtype = DTYPES.get(self.mode, torch.float32)
        self.scaler = torch.amp.GradScaler(self.device.type) if self.mode == "fp16" else None

    def __repr__(self) -> str:
        return f"Precision({self.mode!r}, device={str(self.device)!r})"

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def autocast(self) -> contextlib.AbstractContextManager:
        """Around a model's forward pass only (no-op when ``off``)."""
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare(self, model: nn.Module) -> nn.Module:
        """Hook ``model.head`` (if it has one) to give float32 outputs, so losses and decoding run in float32."""
        head = getattr(model, "head", None)
        if self.enabled and isinstance(head, nn.Module) and not getattr(head, "_netadapt_float32_outputs", False):
            head.register_forward_hook(_float32_outputs)
            head._netadapt_float32_outputs = True
        return model

    def backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer: torch.optim.Optimizer, *, clip_parameters: Iterable[torch.Tensor] = (), clip: float = 0.0) -> bool:
        """Clip (on unscaled gradients) and step; with fp16 the scaler skips a step whose gradients
        overflowed and lowers its scale. Returns whether the step was taken."""
        if self.scaler is None:
            if clip > 0:
                nn.utils.clip_grad_norm_(clip_parameters, clip)
            optimizer.step()
            return True
        self.scaler.unscale_(optimizer)
        if clip > 0:
            nn.utils.clip_grad_norm_(clip_parameters, clip)
        scale = self.scaler.get_scale()
        self.scaler.step(optimizer)
        self.scaler.update()
        return self.scaler.get_scale() >= scale

    def grad(self, loss: torch.Tensor, inputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``torch.autograd.grad(loss, inputs)``, unscaled; with fp16 the loss is scaled by the
        scaler's current scale (the weight steps keep it adjusted; only they update it)."""
        if self.scaler is None:
            return list(torch.autograd.grad(loss, inputs))
        scale = self.scaler.get_scale()
        return [grad / scale for grad in torch.autograd.grad(loss * scale, inputs)]

    def overflowed(self, grads: Iterable[torch.Tensor | None]) -> bool:
        """fp16: gradients (from :meth:`grad`) that overflowed, whose step must be skipped; never otherwise."""
        return self.scaler is not None and not all(bool(torch.isfinite(grad).all()) for grad in grads if grad is not None)

    def state_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "scaler": self.scaler.state_dict() if self.scaler is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


def _float32_outputs(module: nn.Module, inputs: Any, output: Any) -> Any:
    return _to_float32(output)


def _to_float32(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, dict):
        return {key: _to_float32(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_float32(item) for item in value)
    return value

