"""``python -m pipeline.ensemble``: the DVC stage `ensemble` (:mod:`inspectcnn.stages.ensemble`)."""

from inspectcnn.stages.ensemble import main

if __name__ == "__main__":
    main()
