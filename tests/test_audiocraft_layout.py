"""An audiocraft-layout checkpoint made the way audiocraft makes one, not by renaming our weights.

The LM here is built from torch's own modules under audiocraft's attribute names (StreamingTransformer
with custom=False: nn.MultiheadAttention's stacked `in_proj_weight`, `linear1/linear2`, `norm1`,
`norm_cross`, `norm2`, `out_norm`, `emb.k`, `linears.k`, the T5 conditioner's `output_proj`;
tests/AUDIOCRAFT_FORMAT.md), so `state_dict()` itself yields the key names, and its forward follows
audiocraft's LMModel: summed embeddings plus `create_sin_embedding`, pre-norm layers with causal
self-attention and cross-attention over the projected T5 states, GELU, no biases but the norms'.
Its random weights are saved as `state_dict.bin` {'best_state', 'xp.cfg'}; our loader must then
give the same logits as this model's own forward.
"""

import json

import huggingface_hub.constants
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

from musicgen_cli import MusicGen
from tiny_checkpoints import audiocraft_cfg, make_audiocraft_hub_cache

DIM, HEADS, LAYERS, FFN, N_Q = 32, 4, 2, 64, 4


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(DIM, HEADS, bias=False, batch_first=True)
        self.linear1, self.linear2 = nn.Linear(DIM, FFN, bias=False), nn.Linear(FFN, DIM, bias=False)
        self.norm1, self.norm2, self.norm_cross = nn.LayerNorm(DIM), nn.LayerNorm(DIM), nn.LayerNorm(DIM)
        self.cross_attention = nn.MultiheadAttention(DIM, HEADS, bias=False, batch_first=True)

    def forward(self, x, memory):
        h = self.norm1(x)
        causal = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).triu(1)
        x = x + self.self_attn(h, h, h, attn_mask=causal, need_weights=False)[0]
        h = self.norm_cross(x)
        x = x + self.cross_attention(h, memory, memory, need_weights=False)[0]
        return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))


class AudiocraftLM(nn.Module):
    def __init__(self, card: int, text_dim: int):
        super().__init__()
        self.condition_provider = nn.Module()
        self.condition_provider.conditioners = nn.ModuleDict({"description": nn.Module()})
        self.condition_provider.conditioners["description"].output_proj = nn.Linear(text_dim, DIM)
        self.emb = nn.ModuleList(nn.Embedding(card + 1, DIM) for _ in range(N_Q))
        self.transformer = nn.Module()
        self.transformer.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.out_norm = nn.LayerNorm(DIM)
        self.linears = nn.ModuleList(nn.Linear(DIM, card, bias=False) for _ in range(N_Q))

    def forward(self, codes: torch.Tensor, t5_states: torch.Tensor) -> torch.Tensor:
        """codes [B, K, S] (the special id included) -> logits [B, K, S, card]."""
        memory = self.condition_provider.conditioners["description"].output_proj(t5_states)
        x = sum(emb(codes[:, k]) for k, emb in enumerate(self.emb))
        half = DIM // 2  # audiocraft's create_sin_embedding, max_period 10000
        phase = torch.arange(codes.shape[2])[:, None] / 10000 ** (torch.arange(half) / (half - 1))
        x = x + torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)
        for layer in self.transformer.layers:
            x = layer(x, memory)
        x = self.out_norm(x)
        return torch.stack([lin(x) for lin in self.linears], dim=1)


@pytest.fixture(scope="module")
def audiocraft_folder(mono_ckpt, tmp_path_factory):
    """(folder with state_dict.bin + compression_state_dict.bin, the model, its hub cache for t5 and EnCodec)."""
    root = tmp_path_factory.mktemp("audiocraft-own")
    make_audiocraft_hub_cache(root / "cache", mono_ckpt, root / "work")  # t5-base and facebook/encodec_32khz
    config = json.loads((mono_ckpt / "config.json").read_text())
    card, text_dim = config["decoder"]["vocab_size"], config["text_encoder"]["d_model"]
    torch.manual_seed(0)
    model = AudiocraftLM(card, text_dim).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
    best_state = model.state_dict()
    assert "transformer.layers.1.cross_attention.in_proj_weight" in best_state and not any("bias" in k
            for k in best_state if "attn" in k or "attention" in k or "linear" in k)
    cfg = audiocraft_cfg(dim=DIM, num_heads=HEADS, num_layers=LAYERS, hidden_scale=FFN // DIM, card=card, n_q=N_Q,
                         stereo=False)
    folder = root / "ac"
    folder.mkdir()
    torch.save({"best_state": best_state, "xp.cfg": yaml.safe_dump(cfg)}, folder / "state_dict.bin")
    torch.save({"pretrained": "facebook/encodec_32khz", "exported": True, "version": "1.3.0"},
               folder / "compression_state_dict.bin")
    return folder, model, root / "cache"


def test_our_loader_gives_audiocrafts_logits(audiocraft_folder, monkeypatch):
    folder, model, cache = audiocraft_folder
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    mg = MusicGen.load(str(folder), device="cpu", backend="torch")
    card = mg.lm.cfg.card
    states, mask = mg.text(["a jazz tune with brushed drums"])
    assert bool(mask.all())  # one prompt: no padding (audiocraft does not mask it in cross-attention)
    codes = torch.randint(0, card + 1, (1, N_Q, 24), generator=torch.Generator().manual_seed(1))
    codes[:, :, 0] = card  # the start column
    with torch.no_grad():
        want = model(codes, states)
        mg.lm.set_conditioning(states, mask)
        mg.lm.setup_caches(1, 24)
        prefill = mg.lm(codes[:, :, :23], 0)
        step = mg.lm(codes[:, :, 23:], 23)
    torch.testing.assert_close(prefill, want[:, :, :23], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(step, want[:, :, 23:], atol=1e-4, rtol=1e-4)
    assert want.std() > 0.1  # the logits vary: a swapped or dropped weight would show
