"""What every training stage shares: resumable checkpoints and a JSON-lines loss log."""

from __future__ import annotations

import json
from pathlib import Path

import torch


class Checkpointer:
    """``out/checkpoint.pt`` holds model, optimizer and step; written to a temporary file, then renamed.
    Loaded with ``weights_only=True``: it is only ever tensors and numbers."""

    def __init__(self, out: Path, model: torch.nn.Module, opt: torch.optim.Optimizer):
        self.path = out / "checkpoint.pt"
        self.model, self.opt = model, opt
        out.mkdir(parents=True, exist_ok=True)

    def resume(self) -> int:
        if not self.path.exists():
            return 0
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        return int(state["step"])

    def save(self, step: int) -> None:
        tmp = self.path.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "opt": self.opt.state_dict(), "step": step}, tmp)
        tmp.replace(self.path)


def log_line(out: Path, **fields) -> None:
    """Append one JSON line to ``out/log.jsonl`` and print it."""
    text = json.dumps({k: round(v, 5) if isinstance(v, float) else v for k, v in fields.items()})
    with open(out / "log.jsonl", "a") as f:
        f.write(text + "\n")
    print(text, flush=True)
