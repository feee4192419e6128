"""What every training stage shares: a run's fixed plan, resumable checkpoints and a JSON-lines loss log."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def plan(out: Path, **fields) -> dict:
    """The run's fixed plan: written by the first call, read (and the caller's values ignored) later;
    a field the stored plan does not have yet is added (once: from then on it is fixed too)."""
    path = out / "run.json"
    if path.exists():
        stored = json.loads(path.read_text())
        changed = {k: (stored[k], v) for k, v in fields.items() if k != "config" and k in stored and stored[k] != v}
        if changed:
            print(f"resuming with the run's own plan; ignoring {changed}", flush=True)
        added = {k: v for k, v in fields.items() if k not in stored}  # a field the plan never had: set once
        if added:
            print(f"adding to the run's plan: {added}", flush=True)
            stored.update(added)
            path.write_text(json.dumps(stored, indent=1) + "\n")
        return stored
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields, indent=1) + "\n")
    return fields


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
