"""``python -m pipeline.prepare``: the DVC stage `prepare` (:mod:`inspectcnn.stages.prepare`)."""

from inspectcnn.stages.prepare import main

if __name__ == "__main__":
    main()
