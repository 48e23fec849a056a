"""Loading ``.keras`` files safely: the one place the project deserializes a model.

Keras' ``safe_mode=True`` refuses to rebuild anything that would run Python code stored in the
file (a ``Lambda`` layer's bytecode, arbitrary functions). Every model this project saves loads
that way; a file that does not is either not ours or was changed, so it is refused with an
explanation instead of Keras' bare ValueError.
"""

from __future__ import annotations

from pathlib import Path

import keras

from inspectcnn.errors import UserError


class UnsafeModelError(UserError, ValueError):
    """A model file needs unsafe deserialization (code stored in the file) and is not loaded."""


def load_model(path: str | Path) -> keras.Model:
    """The model in ``path``, rebuilt with ``safe_mode=True`` and without its training configuration."""
    path = Path(path)
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except ValueError as error:
        text = str(error)
        if "safe_mode" not in text and "unsafe" not in text.lower():
            raise
        raise UnsafeModelError(
            f"{path}: refused to load. The file contains Python code (for example a Lambda layer or a "
            "pickled function) that Keras would have to execute to rebuild the model, and this project "
            "loads models only with safe_mode=True so that a model file can never run code on your "
            "machine. Models trained by this pipeline never need this. If the file is yours, rebuild "
            "the model with built-in or registered layers instead of Lambda; do not load files you do "
            f"not trust. (Keras: {text.splitlines()[0]})"
        ) from None
