"""``python -m pipeline.evaluate``: the DVC stage `evaluate@<entry> / evaluate_transfer@<entry>` (:mod:`inspectcnn.stages.evaluate`)."""

from inspectcnn.stages.evaluate import main

if __name__ == "__main__":
    main()
