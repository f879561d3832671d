"""A small PyTorch module for the TorchScript loader test (import only after torch is known present)."""

import torch


class Scorer(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(4, 2)

    def forward(self, features: torch.Tensor, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.linear(features) + offset
        return scores, scores.argmax(dim=1)
