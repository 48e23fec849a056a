"""inspectcnn: train, transfer-learn, evaluate and compare classic CNNs on inspection images."""

import os

# TensorFlow's C++ start-up messages (CUDA probing, oneDNN notes) drown the stage output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
