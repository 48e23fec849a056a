"""The optimizer and its learning-rate schedule, built in one place for from-scratch training and for each
phase of transfer learning."""

from __future__ import annotations

import keras

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


def build_optimizer(kind: str, learning_rate: float, *, schedule: str = "constant", steps: int = 0,
                    warmup_steps: int = 0, weight_decay: float = 0.0,
                    ema_momentum: float | None = None) -> keras.optimizers.Optimizer:
    """``kind`` at ``learning_rate``; ``schedule: cosine`` decays it to 1 % over ``steps`` optimizer steps
    (after a linear warm-up of ``warmup_steps`` from 0). ``weight_decay`` 0 means none (AdamW: 0.004).
    ``ema_momentum``: the optimizer also keeps a moving average of the weights (swap it in with
    ``keras.callbacks.SwapEMAWeights``)."""
    rate = learning_rate
    if schedule == "cosine" and steps:
        rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup_steps else learning_rate,
            decay_steps=max(1, steps - warmup_steps),
            alpha=0.01,
            warmup_target=learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    ema = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
    kinds = {
        "adam": lambda: keras.optimizers.Adam(rate, weight_decay=weight_decay or None, **ema),
        "adamw": lambda: keras.optimizers.AdamW(rate, weight_decay=weight_decay or 0.004, **ema),
        "sgd": lambda: keras.optimizers.SGD(rate, momentum=0.9, nesterov=True, weight_decay=weight_decay or None,
                                            **ema),
        "rmsprop": lambda: keras.optimizers.RMSprop(rate, weight_decay=weight_decay or None, **ema),
    }
    if kind not in kinds:
        raise ValueError(f"optimizer {kind!r}: one of {', '.join(OPTIMIZERS)}")
    return kinds[kind]()
