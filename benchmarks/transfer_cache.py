"""Phase 1 of transfer learning: head epochs on cached base features vs. through the frozen base.

    python benchmarks/transfer_cache.py --size 96 --epochs 3

Uses the prepared data (run `dvc repro prepare` first) and the bundled hed-vgg16 weights. Both
ways train the same head for the same number of epochs; the cached way includes the one-off
feature extraction. Prints both wall times and their ratio.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import keras

from inspectcnn import artifacts
from inspectcnn.config import TransferConfig
from inspectcnn.data.dataset import load_split
from inspectcnn.data.store import read_meta
from inspectcnn.transfer import build_transfer_model, extract_features, head_model, load_base, set_trainable


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", default="benchmarks/results/transfer_cache.json")
    args = parser.parse_args()
    config = TransferConfig(image_size=args.size, frozen_epochs=args.epochs)
    channels = int(read_meta(artifacts.PREPARED)["channels"])
    load = dict(image_size=args.size, batch_size=32, channels=channels)

    def fresh():
        keras.utils.set_random_seed(0)
        model = build_transfer_model(config, channels, load_base(config))
        set_trainable(model, None)
        return model

    model = fresh()
    start = time.perf_counter()
    x_train, y_train = extract_features(model, load_split(artifacts.PREPARED, "train", **load))
    x_val, y_val = extract_features(model, load_split(artifacts.PREPARED, "val", **load))
    head = head_model(model)
    head.compile(optimizer="adam", loss="binary_crossentropy")
    head.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=args.epochs, batch_size=32, verbose=0)
    cached = time.perf_counter() - start

    model = fresh()
    model.compile(optimizer="adam", loss="binary_crossentropy")
    start = time.perf_counter()
    model.fit(load_split(artifacts.PREPARED, "train", shuffle=True, seed=0, **load),
              validation_data=load_split(artifacts.PREPARED, "val", **load), epochs=args.epochs, verbose=0)
    through = time.perf_counter() - start

    result = {"image_size": args.size, "head_epochs": args.epochs, "cached_s": round(cached, 1),
              "through_frozen_base_s": round(through, 1), "speedup": round(through / cached, 2)}
    print(json.dumps(result))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
