"""Audio features for evaluating generated music: tempo, key, repetition, style, distances.

Every function takes mono float32 numpy audio at 32 kHz (``SAMPLE_RATE``).
"""

import functools

import numpy as np
import torch
from transformers.audio_utils import mel_filter_bank

from .. import chroma as _chroma

SAMPLE_RATE = _chroma.SAMPLE_RATE  # 32 kHz
KEY_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B")
_ALIASES = {"Db": 1, "D#": 3, "Gb": 6, "Ab": 8, "A#": 10, "Cb": 11, "B#": 0, "E#": 5, "Fb": 4}
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


# --- spectrogram ---------------------------------------------------------------------------------

def _power_spectrogram(audio: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """|STFT|^2 with a periodic Hann window, centred: [frames, n_fft // 2 + 1] float64."""
    wav = torch.from_numpy(np.asarray(audio, dtype=np.float32).reshape(-1))
    if wav.numel() <= n_fft // 2:  # reflect padding needs more samples than half a window
        wav = torch.nn.functional.pad(wav, (0, n_fft // 2 + 1 - wav.numel()))
    spec = torch.stft(wav, n_fft, hop_length=hop, window=torch.hann_window(n_fft), center=True,
                      pad_mode="reflect", return_complex=True)
    return spec.abs().pow(2).T.double().numpy()


@functools.lru_cache(maxsize=4)
def _mel_bank(n_fft: int, n_mels: int) -> np.ndarray:
    return mel_filter_bank(num_frequency_bins=n_fft // 2 + 1, num_mel_filters=n_mels, min_frequency=20.0,
                           max_frequency=16000.0, sampling_rate=SAMPLE_RATE, norm="slaney", mel_scale="slaney")


def log_mel(audio: np.ndarray, n_fft: int = 1024, hop: int = 320, n_mels: int = 64) -> np.ndarray:
    """Log-mel spectrogram, log(power + 1e-6): [frames, n_mels] float32 (100 frames/s by default)."""
    power = _power_spectrogram(audio, n_fft, hop)
    return np.log(power @ _mel_bank(n_fft, n_mels) + 1e-6).astype(np.float32)


def spectral_centroid(audio: np.ndarray, n_fft: int = 1024, hop: int = 320) -> np.ndarray:
    """Per-frame spectral centroid in Hz: [frames]."""
    power = _power_spectrogram(audio, n_fft, hop)
    freqs = np.fft.rfftfreq(n_fft, 1 / SAMPLE_RATE)
    return (power @ freqs) / (power.sum(-1) + 1e-10)


# --- rhythm --------------------------------------------------------------------------------------

def onset_envelope(audio: np.ndarray) -> tuple[np.ndarray, float]:
    """Spectral-flux onset strength (one value per log-mel frame) and its frame rate in frames/s.

    Positive log-mel differences summed over bands, minus a 1 s moving average, half-wave rectified.
    """
    mel = log_mel(audio).astype(np.float64)
    flux = np.maximum(np.diff(mel, axis=0), 0).sum(-1)
    flux = np.concatenate([[0.0], flux])
    rate = SAMPLE_RATE / 320
    width = int(rate)
    local_mean = np.convolve(np.pad(flux, width // 2, mode="edge"), np.ones(width) / width, mode="same")
    local_mean = local_mean[width // 2: width // 2 + len(flux)]
    return np.maximum(flux - local_mean, 0), rate


def tempo(audio: np.ndarray, lo: float = 60.0, hi: float = 180.0) -> float:
    """Tempo in BPM: the onset envelope's autocorrelation peak between ``lo`` and ``hi`` BPM.

    The autocorrelation (per overlapping frame) is weighted by a log-normal prior centred at
    110 BPM with a one-octave spread, and the peak lag is refined by parabolic interpolation.
    Real music may come out at double or half its tempo (see ``octave_tempo_error``), or at 2/3 of
    it when off-beats are nearly as strong as beats (the log compresses their level difference).
    """
    env, rate = onset_envelope(audio)
    env = env - env.mean()
    n = len(env)
    spectrum = np.fft.rfft(env, 2 * n)
    ac = np.fft.irfft(np.abs(spectrum) ** 2)[:n] / np.maximum(n - np.arange(n), 1)
    lags = np.arange(n)
    with np.errstate(divide="ignore"):
        bpm = 60.0 * rate / lags
    valid = (bpm >= lo) & (bpm <= hi)
    if not valid.any():
        return 0.0
    prior = np.exp(-0.5 * np.log2(np.where(valid, bpm, 110.0) / 110.0) ** 2)
    score = np.where(valid, ac * prior, -np.inf)
    k = int(np.argmax(score))
    lag = float(k)
    if valid[k - 1] and k + 1 < n and valid[k + 1]:
        a, b, c = score[k - 1], score[k], score[k + 1]
        denom = a - 2 * b + c
        if denom < 0:
            lag += 0.5 * (a - c) / denom
    return float(60.0 * rate / lag)


def tempo_error(estimate: float, truth: float) -> float:
    """Absolute tempo error in BPM."""
    return abs(estimate - truth)


def octave_tempo_error(estimate: float, truth: float) -> float:
    """Absolute BPM error to the closest of truth / 2, truth and truth * 2."""
    return min(abs(estimate - t) for t in (truth / 2, truth, truth * 2))


# --- tonality ------------------------------------------------------------------------------------

def pitch_class(name: str) -> int:
    """Pitch class 0-11 of a note name such as "D", "F#", "Bb" or "Eb"."""
    name = name.strip()
    name = name[:1].upper() + name[1:]
    if name in KEY_NAMES:
        return KEY_NAMES.index(name)
    if name in _ALIASES:
        return _ALIASES[name]
    raise ValueError(f"unknown pitch name {name!r}")


def _chroma_frames(audio: np.ndarray) -> np.ndarray:
    """Max-normalised chroma: [frames, 12], 4096-sample (0.128 s) hop."""
    wav = torch.from_numpy(np.asarray(audio, dtype=np.float32).reshape(-1))
    return _chroma._normalized_chroma(wav, SAMPLE_RATE)[0].double().numpy()


def key(audio: np.ndarray) -> tuple[int, str]:
    """Krumhansl-Kessler key estimate: (tonic pitch class, "major" or "minor")."""
    profile = _chroma_frames(audio).mean(0)
    best = (-np.inf, 0, "major")
    for mode, template in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            r = np.corrcoef(profile, np.roll(template, tonic))[0, 1]
            if r > best[0]:
                best = (r, tonic, mode)
    return best[1], best[2]


# --- structure -----------------------------------------------------------------------------------

def self_similarity(audio: np.ndarray, hop_s: float = 0.5) -> np.ndarray:
    """Cosine similarity [n, n] between chroma vectors averaged over windows of ``hop_s`` seconds."""
    frames = _chroma_frames(audio)
    times = np.arange(len(frames)) * _chroma.HOP / SAMPLE_RATE
    index = np.floor(times / hop_s).astype(int)
    windows = np.stack([frames[index == i].mean(0) for i in range(index.max() + 1)])
    windows /= np.linalg.norm(windows, axis=-1, keepdims=True) + 1e-8
    return windows @ windows.T


def repetition(audio: np.ndarray, min_lag_s: float = 2.0, hop_s: float = 0.5) -> float:
    """How much the audio repeats itself, 0-1 (higher: more repetition).

    For every window i, the best similarity to any window at least ``min_lag_s`` earlier, averaged
    over the windows that have one; NaN if the audio is too short to have any.
    """
    sim = self_similarity(audio, hop_s)
    lag = int(np.ceil(min_lag_s / hop_s))
    best = [sim[i, : i - lag + 1].max() for i in range(lag, len(sim))]
    return float(np.mean(best)) if best else float("nan")


def structure_contrast(audio: np.ndarray, min_lag_s: float = 2.0, hop_s: float = 0.5) -> float:
    """``repetition`` minus the mean similarity of all window pairs at least ``min_lag_s`` apart: how much
    better the best earlier match is than a typical one. Audio that never changes repeats "perfectly"
    (repetition 1.0) but scores 0 here; music with returning sections scores well above 0."""
    sim = self_similarity(audio, hop_s)
    lag = int(np.ceil(min_lag_s / hop_s))
    typical = [sim[i, : i - lag + 1].mean() for i in range(lag, len(sim))]
    return repetition(audio, min_lag_s, hop_s) - float(np.mean(typical)) if typical else float("nan")


# --- style ---------------------------------------------------------------------------------------

def style_features(audio: np.ndarray) -> np.ndarray:
    """A fixed-length float32 vector [145] describing timbre, harmony and rhythm.

    Log-mel mean and std over time (64 + 64), mean chroma (12), onset-envelope mean and std,
    tempo / 200, and spectral-centroid mean and std divided by 16 kHz.
    """
    mel = log_mel(audio)
    env, _ = onset_envelope(audio)
    centroid = spectral_centroid(audio) / 16000.0
    parts = [mel.mean(0), mel.std(0), _chroma_frames(audio).mean(0),
             [env.mean(), env.std(), tempo(audio) / 200.0, centroid.mean(), centroid.std()]]
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1) for p in parts]).astype(np.float32)


class StyleClassifier:
    """Multinomial logistic regression on standardised ``style_features`` (torch, full-batch LBFGS)."""

    def __init__(self, weight_decay: float = 1e-3, steps: int = 200):
        self.weight_decay, self.steps = weight_decay, steps
        self.classes: list[str] = []

    def _standardise(self, features: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        return (x - self.mean) / self.std

    def fit(self, features: np.ndarray, labels: list[str]) -> "StyleClassifier":
        """Train on features [N, D] and their labels; returns self."""
        torch.manual_seed(0)
        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        self.mean, self.std = x.mean(0), x.std(0, unbiased=False).clamp_min(1e-6)
        self.classes = sorted(set(labels))
        y = torch.tensor([self.classes.index(label) for label in labels])
        x = self._standardise(features)
        self.linear = torch.nn.Linear(x.shape[1], len(self.classes))
        optimiser = torch.optim.LBFGS(self.linear.parameters(), max_iter=self.steps, line_search_fn="strong_wolfe")

        def closure():
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.linear(x), y)
            loss = loss + 0.5 * self.weight_decay * self.linear.weight.pow(2).sum()
            loss.backward()
            return loss

        optimiser.step(closure)
        return self

    def predict(self, features: np.ndarray) -> list[str]:
        """The most likely label of each row of features [N, D]."""
        with torch.no_grad():
            index = self.linear(self._standardise(features)).argmax(-1)
        return [self.classes[i] for i in index.tolist()]

    def accuracy(self, features: np.ndarray, labels: list[str]) -> float:
        """Fraction of rows whose predicted label is the given one."""
        predicted = self.predict(features)
        return sum(p == t for p, t in zip(predicted, labels)) / len(labels)


# --- distances -----------------------------------------------------------------------------------

def si_snr(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Scale-invariant signal-to-noise ratio of ``estimate`` against ``reference``, in dB."""
    length = min(len(reference), len(estimate))
    ref = np.asarray(reference[:length], dtype=np.float64)
    est = np.asarray(estimate[:length], dtype=np.float64)
    ref, est = ref - ref.mean(), est - est.mean()
    target = (est @ ref) / (ref @ ref + 1e-8) * ref
    noise = est - target
    return float(10 * np.log10((target @ target + 1e-8) / (noise @ noise + 1e-8)))


def mel_distance(reference: np.ndarray, estimate: np.ndarray) -> float:
    """Mean absolute difference of the two ``log_mel`` spectrograms, both cut to the shorter audio."""
    length = min(len(reference), len(estimate))
    return float(np.abs(log_mel(reference[:length]) - log_mel(estimate[:length])).mean())
