"""``python -m pipeline.train``: the DVC stage `train@<entry>` (:mod:`inspectcnn.stages.train`)."""

from inspectcnn.stages.train import main

if __name__ == "__main__":
    main()
