"""``python -m pipeline.transfer``: the DVC stage `transfer@<entry>` (:mod:`inspectcnn.stages.transfer`)."""

from inspectcnn.stages.transfer import main

if __name__ == "__main__":
    main()
