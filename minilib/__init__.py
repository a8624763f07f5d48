"""minilib: the finished, tested components of the course "build a small multimodal LLM".

    from minilib import ModelConfig, MiniLLM        # decoder LM, dense or MoE (model.py)
    from minilib import VisionConfig, ViT, MiniVLM  # vision encoder and multimodal model

The names are resolved lazily (PEP 562 module `__getattr__`), so `import minilib` stays
light: it imports neither torch-heavy modules nor `transformers` until a name is used, and a
chapter that has not been written yet does not break the others.
"""

from __future__ import annotations

import importlib

# public name -> submodule that defines it
_LAZY = {
    "ModelConfig": "model",
    "MiniLLM": "model",
    "VisionConfig": "vision",
    "ViT": "vision",
    "MiniVLM": "vlm",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        try:
            value = getattr(module, name)
        except AttributeError:  # the submodule exists but does not define it (yet)
            raise AttributeError(f"minilib.{_LAZY[name]} does not define {name}") from None
        globals()[name] = value  # cache: the next lookup is a plain attribute
        return value
    raise AttributeError(f"module 'minilib' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
