"""Thin DVC stage entry points (python -m pipeline.<stage>); the work is done in inspectcnn."""
