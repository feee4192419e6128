"""EnCodec in plain torch, read from Hugging Face EnCodec weights (no transformers import).

    codec = EnCodec(EnCodecConfig.from_hf(config["audio_encoder"]))
    codec.load_state_dict(EnCodec.hf_state(state), assign=True)        # see checkpoints._build_module
    codes = codec.encode(wav)      # [B, 1, N] -> [B, K, ceil(N / hop_length)]
    wav = codec.decode(codes)      # [B, K, T] -> [B, 1, T * hop_length]

SEANet encoder: conv -> per stride r (in reverse): residual blocks, ELU, conv (kernel 2r, stride r,
channels doubled) -> LSTM with a skip -> ELU -> conv to `hidden_size`. The decoder mirrors it with
transposed convolutions. A residual vector quantizer turns each frame into K codebook indices
(nearest entry of each codebook to what the previous ones left). Module names follow the Hugging
Face checkpoints (`encoder.layers.{i}...`, `quantizer.layers.{k}.codebook.embed`), so their tensors
load after `hf_state` folds weight norm (g * v / |v|) into plain weights.

Supported: weight-norm convolutions, causal or not, without chunking or input normalisation (the
32 kHz MusicGen codec and ours); other configs are refused with a clear error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .errors import MusicgenError


@dataclass(frozen=True)
class EnCodecConfig:
    sampling_rate: int = 32000
    audio_channels: int = 1
    num_filters: int = 64
    upsampling_ratios: tuple[int, ...] = (8, 5, 4, 4)
    hidden_size: int = 128
    kernel_size: int = 7
    last_kernel_size: int = 7
    residual_kernel_size: int = 3
    num_residual_layers: int = 1
    dilation_growth_rate: int = 2
    compress: int = 2
    num_lstm_layers: int = 2
    use_conv_shortcut: bool = False
    causal: bool = False
    pad_mode: str = "reflect"
    trim_right_ratio: float = 1.0
    codebook_size: int = 2048
    codebook_dim: int = 128
    target_bandwidths: tuple[float, ...] = (2.2,)

    @classmethod
    def from_hf(cls, config: dict) -> "EnCodecConfig":
        """The `audio_encoder` part of a MusicGen config.json (or an EnCodec folder's config.json)."""
        unsupported = [
            f"{key}={config.get(key)!r}"
            for key, ok in [("norm_type", "weight_norm"), ("normalize", False), ("chunk_length_s", None)]
            if config.get(key, ok) != ok
        ]
        if unsupported:
            raise MusicgenError(f"this EnCodec configuration is not supported ({', '.join(unsupported)}): "
                                "only weight-norm codecs without chunking or normalisation, as MusicGen's")
        codebook_size = config.get("codebook_size", 1024)
        if codebook_size & (codebook_size - 1):
            raise MusicgenError(f"the codec's codebook_size must be a power of 2, got {codebook_size}")
        try:
            cfg = cls(
                sampling_rate=config["sampling_rate"],
                audio_channels=config.get("audio_channels", 1),
                num_filters=config["num_filters"],
                upsampling_ratios=tuple(config["upsampling_ratios"]),
                hidden_size=config["hidden_size"],
                kernel_size=config.get("kernel_size", 7),
                last_kernel_size=config.get("last_kernel_size", 7),
                residual_kernel_size=config.get("residual_kernel_size", 3),
                num_residual_layers=config.get("num_residual_layers", 1),
                dilation_growth_rate=config.get("dilation_growth_rate", 2),
                compress=config.get("compress", 2),
                num_lstm_layers=config.get("num_lstm_layers", 2),
                use_conv_shortcut=config.get("use_conv_shortcut", True),
                causal=config.get("use_causal_conv", True),
                pad_mode=config.get("pad_mode", "reflect"),
                trim_right_ratio=config.get("trim_right_ratio", 1.0),
                codebook_size=codebook_size,
                codebook_dim=config.get("codebook_dim") or config["hidden_size"],
                target_bandwidths=tuple(config["target_bandwidths"]),
            )
        except KeyError as e:
            raise MusicgenError(f"the codec's config has no '{e.args[0]}'") from e
        if not cfg.causal and cfg.trim_right_ratio != 1.0:
            raise MusicgenError("the codec's trim_right_ratio must be 1.0 for a non-causal codec")
        return cfg

    @property
    def hop_length(self) -> int:
        return math.prod(self.upsampling_ratios)

    @property
    def frame_rate(self) -> int:
        return math.ceil(self.sampling_rate / self.hop_length)

    def codebooks_for(self, bandwidth: float) -> int:
        """Codebooks that fit `bandwidth` kbps (log2(codebook_size) bits each per frame), at least 1."""
        per_codebook = math.log2(self.codebook_size) * self.frame_rate
        return int(max(1, math.floor(bandwidth * 1000 / per_codebook)))

    @property
    def num_quantizers(self) -> int:
        """Codebooks stored in the checkpoint: those of the largest target bandwidth."""
        return int(1000 * self.target_bandwidths[-1] // (self.frame_rate * math.log2(self.codebook_size)))


def pad1d(x: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """F.pad that also reflects inputs shorter than the padding (zeros are appended first)."""
    if mode != "reflect" or x.shape[-1] > max(left, right):
        return F.pad(x, (left, right), mode)
    extra = max(left, right) - x.shape[-1] + 1
    return F.pad(F.pad(x, (0, extra)), (left, right), mode)[..., : -extra]


class Conv(nn.Module):
    """Conv1d padded so that the output has ceil(length / stride) frames: (kernel - stride) samples
    of padding split evenly (non-causal, extra one on the left) or all on the left (causal), plus
    what the last window needs on the right."""

    def __init__(self, cfg: EnCodecConfig, cin: int, cout: int, kernel: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, stride, dilation=dilation)
        self.causal, self.pad_mode = cfg.causal, cfg.pad_mode
        self.span = (kernel - 1) * dilation + 1  # the receptive field of one output
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        length = x.shape[-1]
        total = self.span - self.stride
        frames = math.ceil((length - self.span + total) / self.stride + 1) - 1
        extra = frames * self.stride + self.span - total - length
        left = total if self.causal else total - total // 2
        return self.conv(pad1d(x, left, total - left + extra, self.pad_mode))


class ConvTranspose(nn.Module):
    """ConvTranspose1d trimmed back to length * stride: (kernel - stride) samples removed, evenly
    (non-causal, the extra one on the left) or `trim_right_ratio` of them on the right (causal)."""

    def __init__(self, cfg: EnCodecConfig, cin: int, cout: int, kernel: int, stride: int):
        super().__init__()
        self.conv = nn.ConvTranspose1d(cin, cout, kernel, stride)
        total = kernel - stride
        self.right = math.ceil(total * cfg.trim_right_ratio) if cfg.causal else total // 2
        self.left = total - self.right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return x[..., self.left : x.shape[-1] - self.right]


class LSTM(nn.Module):
    """LSTM over time, [B, C, T] in and out, plus a skip connection."""

    def __init__(self, cfg: EnCodecConfig, dim: int):
        super().__init__()
        self.lstm = nn.LSTM(dim, dim, cfg.num_lstm_layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x)[0]

    def run(self, x: torch.Tensor, state: tuple | None = None) -> tuple[torch.Tensor, tuple]:
        """forward, starting from `state` (None: the start of a piece); also returns the state after
        the last step, from which the next part of the piece carries on (codec_stream.py)."""
        x = x.permute(2, 0, 1)  # [T, B, C]
        y, state = self.lstm(x, state)
        return (y + x).permute(1, 2, 0), state


class ResidualBlock(nn.Module):
    """x + [ELU, conv k (dilated) to dim / compress, ELU, conv 1 back to dim](x)."""

    def __init__(self, cfg: EnCodecConfig, dim: int, dilation: int):
        super().__init__()
        hidden = dim // cfg.compress
        self.block = nn.ModuleList([
            nn.ELU(), Conv(cfg, dim, hidden, cfg.residual_kernel_size, dilation=dilation),
            nn.ELU(), Conv(cfg, hidden, dim, 1),
        ])
        self.shortcut = Conv(cfg, dim, dim, 1) if cfg.use_conv_shortcut else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for layer in self.block:
            y = layer(y)
        return self.shortcut(x) + y


class SEANet(nn.Module):
    """The encoder (decoder=False) or the decoder: a plain stack of `layers`."""

    def __init__(self, cfg: EnCodecConfig, decoder: bool):
        super().__init__()
        nf, res = cfg.num_filters, range(cfg.num_residual_layers)
        top = nf * 2 ** len(cfg.upsampling_ratios)
        if not decoder:
            layers = [Conv(cfg, cfg.audio_channels, nf, cfg.kernel_size)]
            for i, ratio in enumerate(reversed(cfg.upsampling_ratios)):
                dim = nf * 2**i
                layers += [ResidualBlock(cfg, dim, cfg.dilation_growth_rate**j) for j in res]
                layers += [nn.ELU(), Conv(cfg, dim, dim * 2, ratio * 2, stride=ratio)]
            layers += [LSTM(cfg, top), nn.ELU(), Conv(cfg, top, cfg.hidden_size, cfg.last_kernel_size)]
        else:
            layers = [Conv(cfg, cfg.hidden_size, top, cfg.kernel_size), LSTM(cfg, top)]
            for i, ratio in enumerate(cfg.upsampling_ratios):
                dim = top // 2**i
                layers += [nn.ELU(), ConvTranspose(cfg, dim, dim // 2, ratio * 2, stride=ratio)]
                layers += [ResidualBlock(cfg, dim // 2, cfg.dilation_growth_rate**j) for j in res]
            layers += [nn.ELU(), Conv(cfg, nf, cfg.audio_channels, cfg.last_kernel_size)]
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x


class Codebook(nn.Module):
    def __init__(self, cfg: EnCodecConfig):
        super().__init__()
        self.embed = nn.Buffer(torch.zeros(cfg.codebook_size, cfg.codebook_dim))

    def nearest(self, x: torch.Tensor) -> torch.Tensor:
        """[N, D] -> [N] index of the nearest entry (squared Euclidean distance)."""
        e = self.embed.t()
        distance = x.pow(2).sum(1, keepdim=True) - 2 * x @ e + e.pow(2).sum(0, keepdim=True)
        return (-distance).max(dim=-1).indices


class Quantizer(nn.Module):
    def __init__(self, cfg: EnCodecConfig):
        super().__init__()
        self.layers = nn.ModuleList(nn.Module() for _ in range(cfg.num_quantizers))
        for layer in self.layers:
            layer.codebook = Codebook(cfg)

    def encode(self, x: torch.Tensor, num_codebooks: int) -> torch.Tensor:
        """[B, D, T] -> codes [B, K, T]: each codebook quantizes what the previous ones left."""
        residual = x.transpose(1, 2)  # [B, T, D]
        codes = []
        for layer in self.layers[:num_codebooks]:
            idx = layer.codebook.nearest(residual.reshape(-1, residual.shape[-1])).view(residual.shape[:-1])
            residual = residual - F.embedding(idx, layer.codebook.embed)
            codes.append(idx)
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> the sum of their entries [B, D, T]."""
        out = 0.0
        for k in range(codes.shape[1]):
            out = out + F.embedding(codes[:, k], self.layers[k].codebook.embed)
        return out.transpose(1, 2)


class EnCodec(nn.Module):
    config_class = EnCodecConfig

    def __init__(self, cfg: EnCodecConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = SEANet(cfg, decoder=False)
        self.decoder = SEANet(cfg, decoder=True)
        self.quantizer = Quantizer(cfg)
        self.sampling_rate, self.frame_rate, self.hop_length = cfg.sampling_rate, cfg.frame_rate, cfg.hop_length
        self.num_codebooks = cfg.codebooks_for(cfg.target_bandwidths[0])  # what transformers encodes with

    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """wav [B, audio_channels, N] at `sampling_rate` -> codes [B, K, ceil(N / hop_length)]
        (K: `num_codebooks`, by default as many as the first target bandwidth allows)."""
        k = self.num_codebooks if num_codebooks is None else num_codebooks
        if not 1 <= k <= self.cfg.num_quantizers:
            raise ValueError(f"the codec has {self.cfg.num_quantizers} codebooks, {k} were asked for")
        return self.quantizer.encode(self.encoder(wav), k)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> wav [B, audio_channels, T * hop_length]."""
        if codes.shape[1] > self.cfg.num_quantizers:
            raise ValueError(f"the codec has {self.cfg.num_quantizers} codebooks, got codes for {codes.shape[1]}")
        return self.decoder(self.quantizer.decode(codes))

    @staticmethod
    def hf_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Hugging Face EnCodec tensors -> ours: weight norm folded into plain weights (v * g / |v|, the
        norm over all but the first dimension; torch's own kernel, so the weights are bit for bit those
        transformers computes at each call), whether stored as `weight_g`/`weight_v` (hub files) or
        `parametrizations.weight.original0/1` (transformers 5); the codebooks' training statistics
        (inited, cluster_size, embed_avg) dropped. Anything else is kept as it is."""
        stats = (".codebook.inited", ".codebook.cluster_size", ".codebook.embed_avg")
        out = {k: v for k, v in state.items() if not k.endswith(stats)}
        for g_name, v_name in _WEIGHT_NORM_NAMES:
            for key in [k for k in out if k.endswith(g_name)]:
                base = key[: -len(g_name)]
                g, v = out[key], out.get(base + v_name)
                if v is None or g.shape != (v.shape[0],) + (1,) * (v.dim() - 1):
                    continue  # left as it is: loading reports it
                del out[key], out[base + v_name]
                out[base + ".weight"] = torch._weight_norm(v, g, 0)
        return out


_WEIGHT_NORM_NAMES = [  # (magnitude g, direction v)
    (".weight_g", ".weight_v"),
    (".parametrizations.weight.original0", ".parametrizations.weight.original1"),
]
