"""LPIPS with the AlexNet backbone (Zhang et al. 2018), from a local weights file.

One network serves both the perceptual loss (:class:`videosynth.losses.PerceptualLoss`) and
the ``lpips`` reconstruction metric (:func:`videosynth.metrics.recon.lpips_distance`). Its
weights are found like every other metric weight (:mod:`.weights`: an explicit path,
``$VIDEOSYNTH_WEIGHTS``, the user cache) and nothing is downloaded.

The weights file is safetensors with keys ``features.{0,3,6,8,10}.{weight,bias}`` (torchvision
AlexNet) and ``lin{0..4}.weight`` or ``lin{0..4}.model.1.weight`` of shape ``(1, C_k, 1, 1)``
(the LPIPS linear heads, as in the lpips package's ``weights/v0.1/alex.pth``): merging those
two state dicts and saving them with safetensors gives the file.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from videosynth.errors import MissingWeightsError
from videosynth.metrics.weights import ResolvedWeights, resolve_weights

# LPIPS input normalisation for [-1, 1] images (Zhang et al. 2018, ``ScalingLayer``).
LPIPS_SHIFT = (-0.030, -0.088, -0.188)
LPIPS_SCALE = (0.458, 0.448, 0.450)
# AlexNet convolutions (torchvision ``alexnet().features`` indices): (index, in, out, kernel, stride, padding);
# LPIPS compares the ReLU output of each of them.
ALEXNET_CONVS = ((0, 3, 64, 11, 4, 2), (3, 64, 192, 5, 1, 2), (6, 192, 384, 3, 1, 1),
                 (8, 384, 256, 3, 1, 1), (10, 256, 256, 3, 1, 1))
# Max-pooling (kernel 3, stride 2) follows the first two convolutions.
ALEXNET_POOL_AFTER = (0, 3)
ALEXNET_POOL = (3, 2)
# LPIPS head keys: ``lin0.weight`` or the lpips package's own ``lin0.model.1.weight``.
LPIPS_LIN_KEY = re.compile(r"^lin(\d)\.(?:model\.1\.)?weight$")
# Added to the channel norm before dividing, as in LPIPS ``normalize_tensor``.
LPIPS_EPS = 1e-10
# Smallest frame side AlexNet's stride-4 stem and two poolings accept.
LPIPS_MIN_SIZE = 32


class LPIPSAlex(nn.Module):
    """LPIPS-alex distance between image batches ``(N, 3, H, W)`` in ``[-1, 1]`` -> ``(N,)``."""

    def __init__(self):
        super().__init__()
        self.register_buffer("shift", torch.tensor(LPIPS_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(LPIPS_SCALE).view(1, 3, 1, 1), persistent=False)
        self.features = nn.ModuleDict({
            str(i): nn.Conv2d(cin, cout, k, stride, pad) for i, cin, cout, k, stride, pad in ALEXNET_CONVS
        })
        self.lins = nn.ModuleList([nn.Conv2d(cout, 1, 1, bias=False) for _, _, cout, *_ in ALEXNET_CONVS])

    def load_file(self, path: Path) -> None:
        """Load ``path`` (safetensors). Raises MissingWeightsError naming absent/mismatched keys."""
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError) as exc:
            raise MissingWeightsError(f"{path} is not a readable safetensors file ({exc}); re-export the "
                                      "LPIPS-alex weights as described in videosynth/metrics/lpips.py")
        state = {k: v for k, v in tensors.items() if k.startswith("features.")}
        for key, value in tensors.items():
            match = LPIPS_LIN_KEY.match(key)
            if match:
                state[f"lins.{match.group(1)}.weight"] = value
        expected = self.state_dict()
        missing = sorted(k for k in expected if k not in state)
        wrong = sorted(k for k in expected if k in state and state[k].shape != expected[k].shape)
        if missing or wrong:
            raise MissingWeightsError(f"{path} is not an LPIPS-alex weights file (missing keys: {missing[:4]}, "
                                      f"wrong shapes: {wrong[:4]}); re-export it as described in "
                                      "videosynth/metrics/lpips.py")
        self.load_state_dict({k: state[k] for k in expected})

    def _activations(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.shift) / self.scale  # (N, 3, H, W)
        out = []
        for index, conv in self.features.items():
            x = F.relu(conv(x))
            out.append(x)
            if int(index) in ALEXNET_POOL_AFTER:
                x = F.max_pool2d(x, *ALEXNET_POOL)
        return out

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y: ``(N, 3, H, W)`` in ``[-1, 1]`` (H, W >= 32) -> distances ``(N,)``."""
        total = 0
        for lin, fx, fy in zip(self.lins, self._activations(x), self._activations(y)):
            fx = fx / (fx.pow(2).sum(dim=1, keepdim=True).sqrt() + LPIPS_EPS)  # (N, C, h, w) unit channel norm
            fy = fy / (fy.pow(2).sum(dim=1, keepdim=True).sqrt() + LPIPS_EPS)
            total = total + lin((fx - fy) ** 2).mean(dim=(1, 2, 3))  # (N,)
        return total


def load_lpips(path: str | Path | None = None) -> tuple[LPIPSAlex, ResolvedWeights]:
    """The frozen LPIPS-alex network from local weights, and where they were found.

    Raises:
        MissingWeightsError: the file is not found (the message lists every place searched)
            or is not an LPIPS-alex file.
    """
    found = resolve_weights("lpips", path)
    net = LPIPSAlex()
    net.load_file(found.path)
    return net.requires_grad_(False).eval(), found


def video_frames(video: torch.Tensor) -> torch.Tensor:
    """``(B, C, T, H, W)`` -> float32 frames ``(B*T, C, H, W)``."""
    b, c, t, h, w = video.shape
    return video.float().transpose(1, 2).reshape(b * t, c, h, w)
