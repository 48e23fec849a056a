"""``python -m pipeline.report``: the DVC stage `report` (:mod:`inspectcnn.stages.report`)."""

from inspectcnn.stages.report import main

if __name__ == "__main__":
    main()
