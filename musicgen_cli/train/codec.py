"""Stage 2: train the audio codec - transformers' EnCodec architecture (SEANet encoder/decoder + RVQ).

The model is a plain ``EncodecModel``, so the saved folder loads like facebook/encodec_32khz. Training
is ours: reconstruction losses (waveform L1 + multi-scale log-mel L1), and the residual quantizer's
codebooks learnt by exponential moving averages written straight into EnCodec's own buffers
(``embed``, ``embed_avg``, ``cluster_size``), seeded from data and with dead codes restarted from the
batch so that the whole codebook stays in use. No adversarial loss (it would need far more compute).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data import dataset as ds
from .common import Checkpointer, log_line

SAMPLE_RATE = ds.SAMPLE_RATE
NUM_CODEBOOKS = 4
DECAY = 0.99
DEAD = 0.05  # a code whose moving-average use per step falls below this is restarted
WARMUP = 200  # steps of plain autoencoding before the codebooks are seeded from the latents
MEL_SCALES = (256, 512, 1024, 2048)


def codec_config(num_filters: int = 16, codebook_size: int = 1024, codebook_dim: int = 64, lstm: int = 1):
    """EnCodec at 32 kHz, 50 frames/s (hop 640), 4 codebooks, like MusicGen's codec but smaller."""
    from transformers import EncodecConfig

    # 4 codebooks of log2(codebook_size) bits at 50 Hz, plus 10% so the quantizer count floors to 4
    # (2.2 kbps for 1024 codes; transformers derives the number of codebooks from the bandwidth)
    kbps = round(1.1 * NUM_CODEBOOKS * math.log2(codebook_size) * 50 / 1000, 3)
    return EncodecConfig(sampling_rate=SAMPLE_RATE, audio_channels=1, num_filters=num_filters,
                         upsampling_ratios=[8, 5, 4, 4], codebook_size=codebook_size, hidden_size=codebook_dim,
                         codebook_dim=codebook_dim, target_bandwidths=[kbps], num_lstm_layers=lstm,
                         use_causal_conv=False, normalize=False, norm_type="weight_norm", pad_mode="reflect",
                         use_conv_shortcut=False, chunk_length_s=None, overlap=None)


class LatentNorm(torch.nn.Module):
    """Per-channel standardisation of the encoder's output, so that every latent dimension counts alike in
    the quantizer's Euclidean distances. Training uses each batch's own statistics (the encoder's raw
    output is tiny next to Adam's steps, so any fixed or lagging statistics leave the codebook behind)
    and keeps running averages; ``calibrate`` measures the final statistics, and ``fold`` writes them into
    the encoder's last convolution, so the saved model is a plain EncodecModel."""

    def __init__(self, dim: int, momentum: float = 0.05):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return (z - self.mean[:, None]) / self.var.sqrt()[:, None]
        with torch.no_grad():
            mean, var = z.mean(dim=(0, 2)), z.var(dim=(0, 2))
            self.mean.lerp_(mean, self.momentum)
            self.var.lerp_(var, self.momentum)
        return (z - mean[:, None]) / var.sqrt()[:, None]

    @torch.no_grad()
    def calibrate(self, encoder, batches) -> None:
        """Statistics of the final encoder over many batches (the averages that inference will use)."""
        zs = [encoder(wav) for wav in batches]
        self.mean.copy_(torch.stack([z.mean(dim=(0, 2)) for z in zs]).mean(0))
        self.var.copy_(torch.stack([((z - self.mean[:, None]) ** 2).mean(dim=(0, 2)) for z in zs]).mean(0))

    @torch.no_grad()
    def fold(self, model) -> None:
        """Make ``model.encoder`` output the standardised latents itself (weight-norm gain and bias)."""
        conv = model.encoder.layers[-1].conv
        std = self.var.sqrt()
        gain = conv.parametrizations.weight.original0
        gain.div_(std.view(-1, *[1] * (gain.dim() - 1)))
        conv.bias.sub_(self.mean).div_(std)


class Quantizer:
    """Residual VQ over EnCodec's codebooks: straight-through in the forward pass, EMA updates in training."""

    def __init__(self, model, levels: int | None = None):
        """Codebooks ``model.quantizer.layers[i].codebook`` (EnCodec's layout, also codec_v2's)."""
        levels = levels or model.config.num_quantizers
        self.books = [layer.codebook for layer in model.quantizer.layers[:levels]]

    def __call__(self, latents: torch.Tensor, update: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """latents [B, D, T] -> (quantized with straight-through gradient, codes [K, B, T], commitment loss)."""
        b, d, t = latents.shape
        residual = latents.detach().transpose(1, 2).reshape(-1, d)
        total = torch.zeros_like(residual)
        codes = []
        for book in self.books:
            if update and not bool(book.inited.item()):
                every = torch.ones(book.embed.shape[0], dtype=torch.bool, device=residual.device)
                _reseed(book, every, residual, jitter=0.01)  # jitter: codes drawn twice must differ
                book.inited.fill_(1.0)
            idx = torch.cdist(residual, book.embed).argmin(dim=1)
            q = book.embed[idx]
            if update:
                self._ema(book, residual, idx)
            codes.append(idx.view(b, t))
            total = total + q
            residual = residual - q
        quantized = total.view(b, t, d).transpose(1, 2)
        commit = F.mse_loss(latents, quantized)
        return latents + (quantized - latents).detach(), torch.stack(codes), commit

    @torch.no_grad()
    def _ema(self, book, x: torch.Tensor, idx: torch.Tensor) -> None:
        size = book.embed.shape[0]
        counts = torch.bincount(idx, minlength=size).float()
        sums = torch.zeros_like(book.embed).index_add_(0, idx, x)
        book.cluster_size.mul_(DECAY).add_(counts, alpha=1 - DECAY)
        book.embed_avg.mul_(DECAY).add_(sums, alpha=1 - DECAY)
        n = book.cluster_size.sum()
        smoothed = (book.cluster_size + 1e-5) / (n + size * 1e-5) * n
        book.embed.copy_(book.embed_avg / smoothed[:, None])
        dead = book.cluster_size < DEAD
        if dead.any():
            _reseed(book, dead, x)


@torch.no_grad()
def _reseed(book, which: torch.Tensor, x: torch.Tensor, jitter: float = 0.0) -> None:
    """Put the codes ``which`` (bool mask) on random rows of ``x``, with a small use count, so that an
    unused code dies again after ~70 steps unless the data comes near it."""
    pick = x[torch.randint(len(x), (int(which.sum()),), device=x.device)]
    if jitter:
        pick = pick + jitter * x.std(0) * torch.randn_like(pick)
    book.embed[which] = pick
    book.embed_avg[which] = pick * 2 * DEAD
    book.cluster_size[which] = 2 * DEAD



class MelLoss(torch.nn.Module):
    """Mean L1 distance between log-mel spectrograms at several resolutions (also our eval metric)."""

    def __init__(self, sample_rate: int = SAMPLE_RATE, scales=MEL_SCALES):
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        self.scales = scales
        for n in scales:
            bank = mel_filter_bank(num_frequency_bins=n // 2 + 1, num_mel_filters=min(128, n // 8), min_frequency=20.0,
                                   max_frequency=sample_rate / 2, sampling_rate=sample_rate, norm="slaney",
                                   mel_scale="slaney")
            self.register_buffer(f"bank{n}", torch.from_numpy(bank).float(), persistent=False)
            self.register_buffer(f"win{n}", torch.hann_window(n), persistent=False)

    def mel(self, x: torch.Tensor, n: int) -> torch.Tensor:
        spec = torch.stft(x.reshape(-1, x.shape[-1]), n, n // 4, window=getattr(self, f"win{n}"), return_complex=True)
        return torch.log(spec.abs().pow(2).transpose(1, 2) @ getattr(self, f"bank{n}") + 1e-5)

    def forward(self, ref: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return sum(F.l1_loss(self.mel(out, n), self.mel(ref, n)) for n in self.scales) / len(self.scales)


def load_audio(folder: str | Path) -> list[np.ndarray]:
    return [ds.read(item.mix) for item in ds.load(folder)]


def random_crops(audio: list[np.ndarray], batch: int, samples: int, rng: np.random.Generator) -> torch.Tensor:
    out = np.empty((batch, 1, samples), np.float32)
    for i in range(batch):
        clip = audio[int(rng.integers(len(audio)))]
        start = int(rng.integers(len(clip) - samples + 1))
        out[i, 0] = clip[start : start + samples]
    return torch.from_numpy(out)


def reconstruct(model, wav: torch.Tensor) -> torch.Tensor:
    """The training-time forward pass of a saved codec (latent norm folded in): [B, 1, S] -> [B, 1, S]."""
    q, _, _ = Quantizer(model)(model.encoder(wav), update=False)
    return model.decoder(q)[..., : wav.shape[-1]]


def train(data: str | Path, out: str | Path, steps: int, batch: int = 8, seconds: float = 1.0, lr: float = 1e-3,
          seed: int = 0, num_filters: int = 16, codebook_size: int = 1024, save_every: int = 250,
          threads: int | None = None, warmup: int = WARMUP, device: str = "cpu") -> Path:
    """Train (or resume) the codec in ``out``; saves ``out/codec`` (save_pretrained) and returns it."""
    from transformers import EncodecModel

    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    model = EncodecModel(codec_config(num_filters, codebook_size))
    for layer in model.quantizer.layers:
        layer.codebook.inited.fill_(0.0)
    model.latent_norm = LatentNorm(model.config.hidden_size)  # checkpointed with the model, folded at the end
    model.to(device)
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opt = torch.optim.Adam(params, lr=lr, betas=(0.5, 0.9))
    ckpt = Checkpointer(Path(out), model, opt)
    step = ckpt.resume()
    audio = load_audio(data)
    rng = np.random.default_rng([seed, step])
    quantizer, mel = Quantizer(model), MelLoss().to(device)
    samples = int(seconds * SAMPLE_RATE)
    model.train()
    t0 = time.time()
    while step < steps:
        wav = random_crops(audio, batch, samples, rng).to(device)
        latents = model.latent_norm(model.encoder(wav))
        if step < warmup:  # let the latents take shape before any codebook is fitted to them
            q, codes, commit = latents, torch.zeros(1, 1), torch.zeros(())
        else:
            q, codes, commit = quantizer(latents, update=True)
        rec = model.decoder(q)[..., :samples]
        loss_mel, loss_l1 = mel(wav, rec), F.l1_loss(rec, wav)
        loss = loss_mel + 0.1 * loss_l1 + 0.25 * commit
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        for g in opt.param_groups:
            g["lr"] = lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + math.cos(math.pi * min(step / steps, 1.0)))
        opt.step()
        step += 1
        if step % 25 == 0 or step == steps:
            log_line(Path(out), step=step, mel=loss_mel.item(), l1=loss_l1.item(), commit=commit.item(),
                     distinct_codes=[len(c.unique()) for c in codes], s_per_step=(time.time() - t0) / 25)
            t0 = time.time()
        if step % save_every == 0 or step == steps:
            ckpt.save(step)
    model.eval()
    model.latent_norm.calibrate(model.encoder, (random_crops(audio, batch, samples, rng).to(device) for _ in range(32)))
    model.latent_norm.fold(model)
    del model.latent_norm
    model.cpu()
    folder = Path(out) / "codec"
    model.save_pretrained(folder)
    return folder
