"""inspectcnn: train, transfer-learn, evaluate and compare classic CNNs on inspection images."""

__version__ = "0.1.0"
