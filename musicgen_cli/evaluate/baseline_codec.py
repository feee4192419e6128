"""The floor any codec must clear (reference.md): no neural network at all, same token budget.

log-magnitude STFT (4096 points, hop 640) -> PCA to 256 -> four levels of residual k-means (1024 centroids
each, 4 x 10 bits at 50 Hz like our tokens) -> Griffin-Lim (64 iterations). ``fit`` learns it from a few
training renders in about a minute; ``codec`` is then audio -> audio for codec_report.measure.

    python -m musicgen_cli.evaluate.baseline_codec --train DATA/train --heldout DATA/heldout --out DIR
"""

from __future__ import annotations

import torch

N_FFT, HOP = 4096, 640


def _logmag(audio) -> torch.Tensor:
    wav = torch.as_tensor(audio, dtype=torch.float32)
    spec = torch.stft(wav, N_FFT, HOP, window=torch.hann_window(N_FFT), return_complex=True)
    return torch.log(spec.abs() + 1e-5).T  # [frames, bins]


def _kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator) -> torch.Tensor:
    centres = x[torch.randperm(len(x), generator=gen)[:k]].clone()
    for _ in range(iters):
        idx = torch.cdist(x, centres).argmin(1)
        sums = torch.zeros_like(centres).index_add_(0, idx, x)
        counts = torch.bincount(idx, minlength=k)
        used = counts > 0
        centres[used] = sums[used] / counts[used, None]
        centres[~used] = x[torch.randint(len(x), (int((~used).sum()),), generator=gen)]
    return centres


def fit(audios, dims: int = 256, levels: int = 4, size: int = 1024, iters: int = 10, seed: int = 0):
    """-> codec(audio) -> audio."""
    gen = torch.Generator().manual_seed(seed)
    frames = torch.cat([_logmag(a) for a in audios])
    mean = frames.mean(0)
    _, _, v = torch.linalg.svd(frames[torch.randperm(len(frames), generator=gen)[:20000]] - mean,
                               full_matrices=False)
    basis = v[:dims].T  # [bins, dims]
    residual, books = (frames - mean) @ basis, []
    for _ in range(levels):
        books.append(_kmeans(residual, size, iters, gen))
        residual = residual - books[-1][torch.cdist(residual, books[-1]).argmin(1)]

    def codec(audio):
        x = (_logmag(audio) - mean) @ basis
        q = torch.zeros_like(x)
        for book in books:
            q = q + book[torch.cdist(x - q, book).argmin(1)]
        mag = torch.exp(q @ basis.T + mean).T  # [bins, frames]
        wav = torch.tensor(audio, dtype=torch.float32)
        return griffin_lim(mag, len(wav)).numpy()

    return codec


def griffin_lim(mag: torch.Tensor, length: int, iters: int = 64) -> torch.Tensor:
    window = torch.hann_window(N_FFT)
    phase = torch.exp(2j * torch.pi * torch.rand(mag.shape, generator=torch.Generator().manual_seed(0)))
    for _ in range(iters):
        wav = torch.istft(mag * phase, N_FFT, HOP, window=window, length=length)
        spec = torch.stft(wav, N_FFT, HOP, window=window, return_complex=True)
        phase = torch.exp(1j * torch.angle(spec))
    return torch.istft(mag * phase, N_FFT, HOP, window=window, length=length)


def main() -> None:
    import argparse
    import json
    from pathlib import Path

    from ..data import dataset as ds
    from .codec_report import report

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train", required=True)
    parser.add_argument("--heldout", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--pieces", type=int, default=150)
    parser.add_argument("--count", type=int, default=12)
    args = parser.parse_args()
    torch.set_num_threads(1)
    audios = [ds.read(item.mix)[: 10 * ds.SAMPLE_RATE] for item in ds.load(args.train)[: args.pieces]]
    result = report(fit(audios), args.heldout, args.out, args.count)
    (Path(args.out) / "report.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
