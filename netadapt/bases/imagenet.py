"""ImageNet weights for base network plugins: torchvision's, hash-checked (docs/writing-a-plugin.md).

A base whose network has torchvision's key layout returns them from ``imagenet_state_dict``::

    from torchvision.models import MNASNet1_0_Weights
    from netadapt.bases.imagenet import torchvision_weights

    def imagenet_state_dict(self):
        return torchvision_weights(MNASNet1_0_Weights.IMAGENET1K_V1, base=self.name)
"""

from __future__ import annotations

import hashlib
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from netadapt.errors import WeightsError
from netadapt.files import load_torch_file

if TYPE_CHECKING:
    from torchvision.models import WeightsEnum


def torchvision_weights(weights: WeightsEnum, *, base: str) -> dict[str, torch.Tensor]:
    """The state dict of a torchvision weights entry (``MNASNet1_0_Weights.IMAGENET1K_V1``), from torch hub's cache or
    downloaded into it, checked against the hash its file name carries; ``base`` names the base network in errors.

    torchvision's own ``get_state_dict`` unpickles the cached file with ``weights_only=False`` and
    checks no hash, so a file placed in ``$TORCH_HOME/hub/checkpoints`` (as offline users copy it
    there) runs any code it holds. Here the file's SHA-256 must begin with the prefix its published
    name carries (``mobilenet_v2-b0353104.pth``; torch hub's ``check_hash`` convention), checked
    before it is read, and it is read with ``weights_only=True``. Every base plugin's ``imagenet``
    weights come through here. Offline, one line says to pass a file.
    """
    url = weights.url
    name = Path(urllib.parse.urlparse(url).path).name
    match = torch.hub.HASH_REGEX.search(name)
    if match is None or len(match.group(1)) < 8:
        raise WeightsError(f"{base}: ImageNet weights {url} carry no SHA-256 prefix in their name; cannot check them")
    prefix = match.group(1)
    path = Path(torch.hub.get_dir()) / "checkpoints" / name
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # looked up when called: torch.hub's download checks the prefix as it writes
            torch.hub.download_url_to_file(url, str(path), hash_prefix=prefix, progress=False)
        except Exception as error:  # URLError, socket errors, hash mismatch: all mean "no weights here"
            raise WeightsError(
                f"cannot fetch ImageNet weights for {base} from {url} ({type(error).__name__}: {error}); "
                "this machine may be offline: download the file elsewhere and pass it with --weights PATH"
            ) from None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if not digest.hexdigest().startswith(prefix):
        raise WeightsError(
            f"{path}: not the published {base} ImageNet weights (its SHA-256 does not begin with {prefix}, as its name says); "
            "not loaded: delete it to download the file again"
        )
    state = load_torch_file(path, what=f"{base} ImageNet weights file")
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    return state
