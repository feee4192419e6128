"""Published checkpoints from the Hugging Face hub, in its standard cache (the one the peers share).

Only the files musicgen reads are fetched: the configs, the tokenizer and one copy of the weights
(safetensors when the repository has them; the repositories also carry pickled and audiocraft
copies, which are skipped). huggingface_hub downloads through a temporary `.incomplete` file that
it renames into place when complete, so an interrupted download leaves no half file in the cache.
It retries a dropped connection within the run; huggingface_hub 2.x no longer resumes a file
across runs (it deletes the partial file), so a run that fails starts that file again next time.
`HF_HUB_OFFLINE=1` (or --offline) never touches the network; `HF_ENDPOINT` names another server.
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
from pathlib import Path

from .errors import MusicgenError
from .files import one_line
from .registry import suggestion

CONFIGS = ["config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
           "tokenizer_config.json", "special_tokens_map.json", "spiece.model"]
TIMEOUT = 10.0  # seconds for the hub's answer to the first request


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def cached(repo: str) -> Path | None:
    """The cached snapshot of `repo` when it is complete enough to load (never downloads)."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(repo, local_files_only=True))
    except Exception:  # not cached, or a cache huggingface_hub cannot read
        return None
    return folder if _complete(folder) else None


def _complete(folder: Path) -> bool:
    if not (folder / "config.json").is_file():
        return (folder / "state_dict.bin").is_file()  # the audiocraft layout
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text())["weight_map"].values())
        except (ValueError, KeyError, OSError):
            return False
        return all((folder / s).is_file() for s in shards)
    return (folder / "model.safetensors").is_file() or (folder / "pytorch_model.bin").is_file()


def wanted(files: list[str]) -> list[str]:
    """Of a repository's files, the ones to fetch: configs, tokenizer and one copy of the weights."""
    names = set(files)
    if "config.json" not in names:  # an audiocraft-layout repository
        weights = ["state_dict.bin", "compression_state_dict.bin"]
    elif any(f.endswith(".safetensors") for f in names):
        weights = [f for f in files if fnmatch.fnmatch(f, "model*.safetensors")] + ["model.safetensors.index.json"]
    else:
        weights = [f for f in files if fnmatch.fnmatch(f, "pytorch_model*.bin")] + ["pytorch_model.bin.index.json"]
    return sorted(names & {*CONFIGS, *weights})


def download(repo: str) -> Path:
    """Fetch `repo` into the hub cache (resuming what an earlier run left) with a progress bar on
    stderr; MusicgenError (one line) for an unknown id, no network, or a cut download."""
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub import errors as hf

    if offline():
        raise MusicgenError(f"'{repo}' is not in the Hugging Face cache, and offline mode (HF_HUB_OFFLINE) "
                            "forbids downloading it")
    print(f"downloading {repo} into the Hugging Face cache ...", file=sys.stderr, flush=True)
    try:
        info = HfApi().model_info(repo, timeout=TIMEOUT)
        files = wanted([s.rfilename for s in info.siblings or []])
        if "config.json" not in files and "state_dict.bin" not in files:
            raise MusicgenError(f"'{repo}' on the hub is not a MusicGen checkpoint (no config.json or state_dict.bin)")
        paths = [hf_hub_download(repo, f, etag_timeout=TIMEOUT) for f in files]
        return Path(paths[0]).parent  # the snapshot folder of the revision main names
    except (hf.RepositoryNotFoundError, hf.GatedRepoError) as e:
        raise MusicgenError(f"no model '{repo}' on the Hugging Face hub{suggestion(repo)}") from e
    except hf.HfHubHTTPError as e:
        raise MusicgenError(f"the Hugging Face hub refused '{repo}': {one_line(e, 160) or type(e).__name__}") from e
    except MusicgenError:
        raise
    except Exception as e:  # no network (httpx's connect errors, timeouts) or a download cut short
        raise MusicgenError(f"cannot download '{repo}' from the Hugging Face hub ({one_line(e, 160) or type(e).__name__}); "
                            "run the command again to retry, or use --model bundled") from e


