"""The bundled model's second codec: STFT frames in, ConvNeXt at the frame rate, inverse STFT out.

Nothing in it upsamples with learned (transposed) convolutions, the source of the first codec's comb at
multiples of the 50 Hz frame rate. The encoder reads log-magnitude STFTs (4096- and 1024-point windows,
hop 640) frame by frame; ConvNeXt blocks run at 50 frames/s; a linear projection gives the latent, which
is standardised per frame (a layer norm) and quantized by a residual VQ (4 x 1024 codes). The decoder (Vocos, Siuzdak
2024) runs ConvNeXt blocks at 50 frames/s and predicts, per frame, the log-magnitude and the phase of a
2560-point STFT (a frequency per bin, whose phase is integrated over frames);
an inverse STFT with hop 640 makes the waveform. Plain torch; no transformers.

``BundledCodec`` answers the part of transformers' ``EncodecModel`` that ``musicgen_cli.codec.Codec`` uses
(``sampling_rate``, ``frame_rate``, ``hop_length``, ``num_codebooks``, ``encode(wav) -> codes [B, K, T]``,
``decode(codes) -> wav``: the face of our EnCodec), so it can stand in for it. ``save``/``load`` use a folder with ``config.json`` and
``codec.pt`` (tensors only, loaded with ``weights_only=True``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import configs
from .errors import MusicgenError

MODEL_TYPE = "musicgen_codec_v2"


@dataclass
class CodecConfig:
    sampling_rate: int = 32000
    hop_length: int = 640
    enc_ffts: list[int] = field(default_factory=lambda: [4096, 1024])
    dec_fft: int = 2560
    dim: int = 256
    enc_blocks: int = 4
    dec_blocks: int = 8
    latent_dim: int = 128
    num_codebooks: int = 4
    codebook_size: int = 1024
    aux_outputs: int = 14  # the score head used in training: 12 pitch classes, pitched and drum onsets
    model_type: str = MODEL_TYPE

    @property
    def frame_rate(self) -> float:
        return self.sampling_rate / self.hop_length


class ConvNeXtBlock(nn.Module):
    """Depthwise conv (k=7) -> LayerNorm -> pointwise MLP (x3) -> layer scale, with a residual."""

    def __init__(self, dim: int, scale: float = 1e-2):
        super().__init__()
        self.dw = nn.Conv1d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.up, self.down = nn.Linear(dim, 3 * dim), nn.Linear(3 * dim, dim)
        self.gamma = nn.Parameter(torch.full((dim,), scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, C, T]
        y = self.norm(self.dw(x).transpose(1, 2))
        y = self.down(F.gelu(self.up(y))) * self.gamma
        return x + y.transpose(1, 2)


class Backbone(nn.Module):
    """in_ch -> dim (conv) -> blocks -> LayerNorm -> out_ch, all at the frame rate: [B, C, T]."""

    def __init__(self, in_ch: int, dim: int, blocks: int, out_ch: int, kernel: int = 7):
        super().__init__()
        self.inp = nn.Conv1d(in_ch, dim, kernel, padding=kernel // 2)
        self.norm_in, self.norm_out = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.blocks = nn.Sequential(*[ConvNeXtBlock(dim) for _ in range(blocks)])
        self.out = nn.Linear(dim, out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm_in(self.inp(x).transpose(1, 2)).transpose(1, 2)
        x = self.blocks(x)
        return self.out(self.norm_out(x.transpose(1, 2))).transpose(1, 2)


def frames_of(wav: torch.Tensor, hop: int) -> int:
    return wav.shape[-1] // hop


def log_spectrogram(wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
    """[B, S] -> log |STFT| [B, n_fft // 2 + 1, S // hop] (centred windows, frame t at sample t * hop)."""
    spec = torch.stft(wav, n_fft, hop, window=torch.hann_window(n_fft, device=wav.device), center=True,
                      pad_mode="constant", return_complex=True)
    return torch.log(spec.abs()[..., : wav.shape[-1] // hop] + 1e-5)


class Codebook(nn.Module):
    """One level of the residual VQ. ``embed`` is all inference needs; the other buffers are the EMA
    statistics that training (musicgen_cli.train.codec.Quantizer) keeps, with EnCodec's names."""

    def __init__(self, size: int, dim: int):
        super().__init__()
        self.register_buffer("embed", torch.zeros(size, dim))
        self.register_buffer("embed_avg", torch.zeros(size, dim))
        self.register_buffer("cluster_size", torch.zeros(size))
        self.register_buffer("inited", torch.zeros(()))


class ResidualVQ(nn.Module):
    def __init__(self, levels: int, size: int, dim: int):
        super().__init__()
        self.layers = nn.ModuleList([_Level(Codebook(size, dim)) for _ in range(levels)])

    @property
    def books(self) -> list[Codebook]:
        return [layer.codebook for layer in self.layers]

    def encode(self, latents: torch.Tensor, levels: int) -> torch.Tensor:
        """[B, D, T] -> codes [levels, B, T] (nearest code of each residual)."""
        b, d, t = latents.shape
        residual = latents.transpose(1, 2).reshape(-1, d)
        codes = []
        for book in self.books[:levels]:
            idx = torch.cdist(residual, book.embed).argmin(dim=1)
            residual = residual - book.embed[idx]
            codes.append(idx.view(b, t))
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [K, B, T] -> [B, D, T] (sum of the chosen codes)."""
        out = sum(book.embed[c] for book, c in zip(self.books, codes))
        return out.permute(0, 2, 1)


class _Level(nn.Module):
    """Holds a codebook as ``.codebook`` (EnCodec's layout: quantizer.layers[i].codebook)."""

    def __init__(self, codebook: Codebook):
        super().__init__()
        self.codebook = codebook


class BundledCodec(nn.Module):
    def __init__(self, config: CodecConfig | None = None):
        super().__init__()
        self.config = c = config or CodecConfig()
        self.encoder = Backbone(sum(n // 2 + 1 for n in c.enc_ffts), c.dim, c.enc_blocks, c.latent_dim,
                                kernel=1)  # 2562 spectral bins in: the blocks give the context
        self.quantizer = ResidualVQ(c.num_codebooks, c.codebook_size, c.latent_dim)
        self.decoder = Backbone(c.latent_dim, c.dim, c.dec_blocks, 3 * (c.dec_fft // 2 + 1))
        with torch.no_grad():  # start from coherent phases: every bin at its own centre frequency
            self.decoder.out.weight[c.dec_fft // 2 + 1 :].zero_()
            self.decoder.out.bias[c.dec_fft // 2 + 1 :].zero_()
        # fixed start phases (not all zero: that would be a click at the first frame)
        # (made on the CPU, where the generator is, also when the rest is built on the meta device)
        start = torch.rand(c.dec_fft // 2 + 1, generator=torch.Generator().manual_seed(0), device="cpu") * 2 * torch.pi
        self.register_buffer("start_phase", start)
        self.aux_head = nn.Linear(c.latent_dim, c.aux_outputs)  # training only; kept so tests can probe it

    def features(self, wav: torch.Tensor) -> torch.Tensor:
        """[B, 1, S] -> [B, sum of bins, S // hop]."""
        x = wav.reshape(-1, wav.shape[-1])
        return torch.cat([log_spectrogram(x, n, self.config.hop_length) for n in self.config.enc_ffts], dim=1)

    def latents(self, wav: torch.Tensor) -> torch.Tensor:
        """Latents before quantization, each frame standardised over its channels: [B, latent_dim, S // hop].
        (Per-frame, so training and inference see the same thing; per-channel statistics from batches
        lagged behind the encoder and made inference's codes differ from training's.)"""
        z = self.encoder(self.features(wav))
        return F.layer_norm(z.transpose(1, 2), (z.shape[1],)).transpose(1, 2)

    def synthesize(self, q: torch.Tensor, samples: int | None = None) -> torch.Tensor:
        """Quantized latents [B, D, T] -> waveform [B, 1, T * hop] (or ``samples``).

        Per frame and bin the decoder gives a log magnitude, a frequency deviation (within +-2 bins) and a
        phase offset (within +-pi). The phase is the running sum of each bin's advance at its own frequency,
        as in a phase vocoder, plus the offset: a held note comes out as one continuous sinusoid. (Phases
        predicted frame by frame from frames that do not change repeat every hop: a comb at the frame rate.)
        """
        spec, _ = self.spectrum(self.decoder(q))
        return self.inverse(spec, samples or q.shape[-1] * self.config.hop_length)

    def spectrum(self, out: torch.Tensor, phase: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The decoder's output [B, 3 * bins, T] -> STFT frames [B, bins, T] (complex) and each bin's
        integrated phase after the last frame [B, bins], from which a later call carries on (``phase``;
        None: the start of a piece). The running sum is kept in float64 and wrapped to one turn before
        it meets float32, so a long piece keeps its phases exact and a piece decoded in chunks
        (codec_stream.py) gets the same ones as in one go."""
        c = self.config
        logmag, dev, offset = out.float().chunk(3, dim=1)
        bins = torch.arange(c.dec_fft // 2 + 1, device=out.device, dtype=torch.float64)[:, None]
        advance = 2 * torch.pi * c.hop_length / c.dec_fft * (bins + 2 * torch.tanh(dev).double())
        start = self.start_phase.double()[:, None] if phase is None else phase[..., None]
        total = start + torch.cumsum(advance, dim=-1)
        angle = torch.remainder(total, 2 * torch.pi).float() + torch.pi * torch.tanh(offset)
        spec = torch.exp(logmag.clamp(max=8.0)) * torch.exp(1j * angle)
        spec = torch.cat([torch.zeros_like(spec[:, :2]), spec[:, 2:]], dim=1)  # nothing below 25 Hz: no DC offset
        return spec, torch.remainder(total[..., -1], 2 * torch.pi)

    def inverse(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """STFT frames [B, bins, T] -> waveform [B, 1, length] (T + 1 centred frames, the last one
        repeated, cover T * hop samples)."""
        c = self.config
        spec = torch.cat([spec, spec[..., -1:]], dim=-1)
        wav = torch.istft(spec, c.dec_fft, c.hop_length, window=torch.hann_window(c.dec_fft, device=spec.device),
                          center=True, length=length)
        return wav[:, None]

    # --- the face musicgen_cli.codec.Codec uses (the same as our EnCodec's) ---------------------------
    @property
    def sampling_rate(self) -> int:
        return self.config.sampling_rate

    @property
    def frame_rate(self) -> float:
        return self.config.frame_rate

    @property
    def hop_length(self) -> int:
        return self.config.hop_length

    @property
    def num_codebooks(self) -> int:
        return self.config.num_codebooks

    def encode(self, wav: torch.Tensor, num_codebooks: int | None = None) -> torch.Tensor:
        """[B, 1, S] -> codes [B, K, S // hop] (whole frames; a partial last frame is dropped)."""
        return self.quantizer.encode(self.latents(wav), num_codebooks or self.config.num_codebooks).transpose(0, 1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, T] -> waveform [B, 1, T * hop]."""
        return self.synthesize(self.quantizer.decode(codes.long().transpose(0, 1)))

    def save(self, folder: str | Path, half: bool = False) -> Path:
        """config.json + codec.pt (inference tensors only: no EMA statistics, no score head)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        keep = {k: v.half() if half and v.is_floating_point() else v for k, v in self.inference_state().items()}
        cfg = asdict(self.config)
        (folder / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
        torch.save(keep, folder / "codec.pt")
        return folder

    def inference_state(self) -> dict[str, torch.Tensor]:
        """The tensors decoding and encoding need (not the EMA statistics or the score head)."""
        return {k: v for k, v in self.state_dict().items()
                if not k.startswith("aux_head") and not k.endswith(("embed_avg", "cluster_size", "inited"))}

    @classmethod
    def from_state(cls, config: dict, state: dict) -> "BundledCodec":
        model = cls(checked_config(config))
        missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
        optional = ("aux_head", "embed_avg", "cluster_size", "inited")
        if unexpected or any(not k.startswith(optional) and not k.endswith(optional) for k in missing):
            raise ValueError(f"codec weights do not fit: missing {missing}, unexpected {unexpected}")
        return model.eval()

    @classmethod
    def load(cls, folder: str | Path) -> "BundledCodec":
        folder = Path(folder)
        config = json.loads((folder / "config.json").read_text())
        return cls.from_state(config, torch.load(folder / "codec.pt", map_location="cpu", weights_only=True))


# sizes a config may give (the bundled codec's: dim 256, 4 + 8 blocks, 4 x 1024 codes)
LIMITS = {"sampling_rate": 384000, "hop_length": 1 << 14, "dec_fft": 1 << 16, "dim": 1 << 14, "enc_blocks": 64,
          "dec_blocks": 64, "latent_dim": 1 << 12, "num_codebooks": 32, "codebook_size": 1 << 16, "aux_outputs": 1 << 10}


def checked_config(config) -> CodecConfig:
    """A config.json's CodecConfig, checked before anything is built: its model_type, whole numbers in
    range, and weights within configs.MAX_GIB (counted on the meta device, where nothing is allocated)."""
    if not isinstance(config, dict):
        raise MusicgenError(f"the codec's config is not an object (got {type(config).__name__})")
    if config.get("model_type", MODEL_TYPE) != MODEL_TYPE:
        raise MusicgenError(f"the codec's config is not a {MODEL_TYPE} one (model_type {config['model_type']!r:.40})")
    configs.check_sizes(config, LIMITS, "the codec's config")
    configs.check_list(config, "enc_ffts", 4, 1 << 16, "the codec's config")
    cfg = CodecConfig(**{k: v for k, v in config.items() if k in CodecConfig.__dataclass_fields__})
    with torch.device("meta"):
        configs.check_weights(configs.weights_bytes(BundledCodec(cfg)), "audio codec", "the codec's config")
    return cfg
