"""A stand-in for Moonshot's ``kimia_infer`` (the real one needs a GPU and 7B weights): it records
how ``KimiAudio`` is built and called and answers a short clip and " an answer ". Like the real
one, its language model (``alm``, a torch module) runs one forward pass per decoding step; the n-th
call takes ``steps_s[n]`` (each step's seconds), to stand for a slow or a stalled generation."""

from __future__ import annotations

import sys
import time
import types
from typing import Any


def install(monkeypatch: Any, torch: Any, steps_s: tuple[tuple[float, ...], ...] = ()) -> list[dict[str, Any]]:
    """Put the stand-in where the backend imports it, pretend there is a GPU and that hub weights
    download (to ``/snapshots/<repo>@<revision>``); returns the calls."""
    import huggingface_hub

    calls: list[dict[str, Any]] = []

    class KimiAudio:
        def __init__(self, model_path: str, load_detokenizer: bool):
            calls.append({"model_path": model_path, "load_detokenizer": load_detokenizer})
            self.alm = torch.nn.Identity()

        def generate(self, chats, output_type, **params):
            n = sum("chats" in c for c in calls)
            calls.append({"chats": chats, "output_type": output_type, "params": params})
            for seconds in steps_s[n] if n < len(steps_s) else (0.0,):
                time.sleep(seconds)
                self.alm(torch.zeros(1))  # one decoding step
            return (torch.full((1, 2400), 0.1) if output_type == "both" else None), " an answer "

    kimia = types.ModuleType("kimia_infer.api.kimia")
    kimia.KimiAudio = KimiAudio
    for name in ("kimia_infer", "kimia_infer.api"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "kimia_infer.api.kimia", kimia)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo, revision: f"/snapshots/{repo}@{revision}")
    return calls
