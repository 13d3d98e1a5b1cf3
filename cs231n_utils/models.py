"""Networks the exercises provide (students build and run them; nothing here is an answer).

:class:`DigitsCNN` is the transfer-learning exercise's network (also
``cs231n_utils.transfer.DigitsCNN``); it is visible inside the grading sandbox.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["DigitsCNN"]


def _check_count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


class DigitsCNN(nn.Module):
    """A small convolutional net for 8x8 grey images: three 3x3 conv blocks, a hidden fully
    connected layer ``fc`` and a linear ``head``.

    ``(N, 1, 8, 8)`` -> block1 (conv, ``width`` channels) -> block2 (conv, ``2 width``, max-pool
    to 4x4) -> block3 (conv, ``2 width``, max-pool to 2x2) -> ``fc`` (flatten, ``8 width`` ->
    ``hidden``, ReLU) -> ``head`` (``hidden`` -> ``num_classes``).
    """

    def __init__(self, num_classes: int = 10, width: int = 16, hidden: int = 64):
        super().__init__()
        num_classes = _check_count(num_classes, "num_classes")
        width = _check_count(width, "width")
        hidden = _check_count(hidden, "hidden")
        self.block1 = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU())
        self.block2 = nn.Sequential(nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.block3 = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * 2 * 2, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, num_classes)

    def architecture(self) -> dict[str, int]:
        """The keyword arguments that build another network of this shape."""
        return {"num_classes": self.head.out_features, "width": self.block1[0].out_channels,
                "hidden": self.head.in_features}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f"x must have shape (N, 1, 8, 8), got {tuple(x.shape)}")
        return self.head(self.fc(self.block3(self.block2(self.block1(x)))))
