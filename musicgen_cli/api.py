"""The Python API: load a model once, generate many times.

    from musicgen_cli import MusicGen, SamplingOptions
    model = MusicGen.load("facebook/musicgen-small")          # a hub id in the local cache, or a folder
    wav = model.generate(["lo-fi jazz"], duration=10.0)      # [batch, channels, samples], float32
    model.sample_rate                                         # 32000
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from . import checkpoints, chroma
from .audio import is_silent, remove_dc
from .codec import Codec
from .conditioning import TextConditioner, with_unconditional
from .errors import MusicgenError
from .files import one_line
from .generation import Progress, generate_codes
from .lm import MusicGenLM
from .native.backends import Backend, BackendError, resolve
from .options import SamplingOptions, check_duration

MELODY_MODELS_HINT = (
    "it is a text-to-music checkpoint; melody needs a musicgen-melody checkpoint such as "
    "facebook/musicgen-melody, facebook/musicgen-melody-large or facebook/musicgen-stereo-melody"
)


BATCH_BUDGET = 2 << 30  # bytes one batch may use (MusicGen.batch_size)
CODEC_BYTES_PER_SAMPLE = 180  # peak bytes per output sample while decoding (200 x 10 s: 11.7 GB)
MAX_BATCH = 64


def check_backend(backend: str, dtype: str, device: torch.device) -> None:
    try:
        resolve(backend, dtype, device.type)
    except BackendError as e:
        raise MusicgenError(str(e)) from e


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MusicgenError("--device cuda was asked for, but this torch has no usable CUDA device")
    return torch.device(device)


class MusicGen:
    def __init__(self, checkpoint: checkpoints.Checkpoint, device: torch.device, backend: str = "auto", dtype: str = "auto"):
        self.name = checkpoint.name
        self.note = checkpoint.note  # what the default model became, and why (None: as asked)
        self.folder = checkpoint.folder
        self.max_duration = checkpoint.max_duration
        with torch.device("meta"):  # no random init: the checkpoint's tensors are assigned as they are
            self.lm = MusicGenLM(checkpoint.lm_config)
        try:
            self.lm.load_state_dict(checkpoint.lm_state, strict=True, assign=True)
        except RuntimeError as e:
            raise MusicgenError(f"the checkpoint's decoder weights do not match its config: {one_line(e, 200)}") from e
        self.lm.to(device=device, dtype=torch.float32).eval().requires_grad_(False)
        self.text = TextConditioner(checkpoint.tokenizer, checkpoint.text_encoder.to(device))
        self.codec = Codec(checkpoint.codec.to(device), checkpoint.lm_config.channels)
        self.device = device
        check_backend(backend, dtype, device)
        self.backend = Backend(self.lm, backend, dtype)

    @classmethod
    def load(cls, model: str | None = None, device: str = "auto", backend: str = "auto", dtype: str = "auto",
             melody: bool = False):
        """model: bundled, a folder, a short name (small, melody, ...) or a hub id, downloaded when not
        cached; None: the default (checkpoints.resolve; `melody` picks the melody default), whose
        `note` then says what it became. backend: auto, torch (the plain PyTorch reference), cpu or
        cuda (native/backends.py); dtype: auto, float32, bfloat16 or int8 for the decoder's weights."""
        device = pick_device(device)
        check_backend(backend, dtype, device)  # before the slow part: loading the checkpoint
        checkpoint = checkpoints.load(None if model is None else str(model), melody)
        return cls(checkpoint, device, backend, dtype)

    @property
    def sample_rate(self) -> int:
        return self.codec.sample_rate

    @property
    def channels(self) -> int:
        return self.lm.cfg.channels

    @property
    def frame_rate(self) -> float:
        return self.codec.frame_rate

    @property
    def default_stride(self) -> float:
        return 0.6 * self.max_duration  # 18 s for the 30 s models, as in audiocraft

    def frames_for(self, seconds: float) -> int:
        return max(1, round(check_duration(seconds) * self.frame_rate))

    def batch_size(self, seconds: float, guided: bool = True) -> int:
        """How many prompts of `seconds` one batch holds within BATCH_BUDGET: each needs its KV cache
        (one window, two rows with guidance) and the codec's decoding of its audio (measured: about
        180 bytes per output sample). A fixed budget, not the memory free now, so that the same seed
        gives the same files on every machine."""
        cfg = self.lm.cfg
        columns = min(self.frames_for(seconds), round(self.max_duration * self.frame_rate)) + cfg.num_codebooks + 1
        kv = cfg.num_layers * 2 * (2 if guided else 1) * columns * cfg.dim * 4
        codec = CODEC_BYTES_PER_SAMPLE * seconds * self.sample_rate * self.channels
        return max(1, min(MAX_BATCH, int(BATCH_BUDGET // (kv + codec))))

    def batches(self, prompts: list[str | None], size: int) -> list[list[int]]:
        """The indices of `prompts` in batches of at most `size`, in order. A melody-layout model's
        text is part of its prefix, padding included, so its prompts share a batch only with prompts
        of as many tokens: a piece then never depends on the prompts made beside it."""
        keys = [0] * len(prompts)
        if self.melody:
            keys = self.text.tokenizer([p or "" for p in prompts])[1].sum(dim=1).tolist()
        groups: dict[int, list[int]] = {}
        for i, key in enumerate(keys):
            groups.setdefault(key, []).append(i)
        return [rows[i : i + size] for rows in groups.values() for i in range(0, len(rows), size)]

    @property
    def melody(self) -> bool:
        """Whether the model takes a melody (chroma) besides text."""
        return self.lm.cfg.melody

    def require_melody(self) -> None:
        if not self.melody:
            raise MusicgenError(f"{self.name} cannot follow a melody: {MELODY_MODELS_HINT}")

    @torch.inference_mode()
    def generate_codes(
        self,
        prompts: list[str | None],
        duration: float,
        options: SamplingOptions = SamplingOptions(),
        stride: float | None = None,
        progress: Progress | None = None,
        *,
        audio: torch.Tensor | None = None,
        melody: torch.Tensor | None = None,
        score: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Descriptions (None: no description) -> codes [B, K, frames] for `duration` seconds.

        audio: [B, channels, samples] at `sample_rate`, a whole number of codec frames: its codes
            begin the piece and the model carries on from them (`duration` counts them).
        melody: [B, samples] mono at chroma.SAMPLE_RATE, for melody models: the piece follows its
            chroma, looped when shorter than the piece, each window from its own point in time.
        score: instead of `melody`, its chroma already made (score.py: from MIDI or chords),
            [B, frames, 12] at score.FRAME_RATE, looped and windowed the same way.
        Past `max_duration`, each new window keeps the last (max_duration - stride) seconds as its
        prompt; `stride` defaults to 60% of the window."""
        if not prompts:
            raise MusicgenError("no prompt given")
        if melody is not None or score is not None:
            self.require_melody()
        frames = self.frames_for(duration)
        window = round(self.max_duration * self.frame_rate)
        stride = self.default_stride if stride is None else stride
        if frames > window and not 0 < stride <= self.max_duration:
            raise MusicgenError(f"stride must be between 0 and {self.max_duration:g} seconds, got {stride:g}")
        if all(p is None for p in prompts) and melody is None and score is None:
            options = dataclasses.replace(options, cfg=1.0)  # both guidance rows would be the same
        with self.backend.threads():  # a small model's text encoder too: torch's products round by thread count
            states, mask = self.text(list(prompts))
        if options.guided:
            states, mask = with_unconditional(states, mask)
        condition = self._conditioning(states, mask, melody, score, len(prompts), options.guided)
        if audio is None:
            prompt = torch.zeros(len(prompts), self.lm.cfg.num_codebooks, 0, dtype=torch.long, device=self.device)
        elif audio.shape[0] != len(prompts):
            raise MusicgenError(f"{audio.shape[0]} audio prompts for {len(prompts)} descriptions")
        else:
            prompt = self.codec.encode(audio, self.lm.cfg.num_codebooks)
        if prompt.shape[2] >= min(frames, window):
            raise MusicgenError("the audio prompt must be shorter than the requested duration and the model's window")
        stride_frames = max(1, round(stride * self.frame_rate))
        decoder = self.backend.decoder(options)
        with self.backend.threads():
            return generate_codes(decoder, frames, prompt, window, stride_frames, progress, condition)

    def _conditioning(self, states, mask, melody, score, batch: int, guided: bool):
        """Set the LM's conditioning; for a melody, return the per-window callback that sets it."""
        if not self.melody:
            self.lm.set_conditioning(states, mask)
            return None
        length = self.lm.cfg.chroma_length
        null = chroma.null_chroma(batch, length, self.lm.cfg.num_chroma)
        if melody is None and score is None:
            self.lm.set_conditioning(states, mask, torch.cat([null, null]) if guided else null)
            return None
        if score is not None:
            if score.shape[0] != batch or score.dim() != 3 or score.shape[1] == 0:
                raise MusicgenError(f"a score chroma must be [{batch}, frames, 12], got {tuple(score.shape)}")

            def from_score(first_frame: int) -> None:
                start = round(first_frame / self.frame_rate * chroma.SAMPLE_RATE / chroma.HOP)
                c = score.float().cpu()[:, (start + torch.arange(length)) % score.shape[1]]
                self.lm.set_conditioning(states, mask, torch.cat([c, null]) if guided else c)

            return from_score
        melody = melody.float().cpu()
        if melody.shape[0] != batch:
            raise MusicgenError(f"{melody.shape[0]} melodies for {batch} descriptions")
        if is_silent(melody):
            raise MusicgenError("the melody is silent; silence has no melody to follow")
        span = round(self.max_duration * chroma.SAMPLE_RATE)  # the audio one window's chroma covers

        def condition(first_frame: int) -> None:
            start = round(first_frame / self.frame_rate * chroma.SAMPLE_RATE)
            looped = melody[:, (start + torch.arange(span)) % melody.shape[1]]
            c = chroma.fit_length(chroma.chroma(looped, chroma.SAMPLE_RATE), length)
            self.lm.set_conditioning(states, mask, torch.cat([c, null]) if guided else c)

        return condition

    def generate(self, prompts: list[str], duration: float, options: SamplingOptions = SamplingOptions(), **kw):
        """Descriptions -> waveform [B, channels, samples] at `sample_rate`."""
        return self.decode(self.generate_codes(prompts, duration, options, **kw))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes [B, K, frames] -> waveform [B, channels, samples] (CPU), without the DC offset and the
        clicks at both ends that the codec leaves. Row by row: a batched convolution rounds differently
        from one row's, and a piece must not depend on the pieces decoded beside it."""
        with self.backend.threads():  # a small model's codec, too, runs faster on one thread
            wavs = [remove_dc(self.codec.decode(codes[i : i + 1]).cpu().numpy(), self.sample_rate)
                    for i in range(codes.shape[0])]
        return torch.from_numpy(np.concatenate(wavs))
