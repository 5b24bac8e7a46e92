"""Reading and writing weights: GGUF, HF folders, our checkpoints; one rename table per format."""
