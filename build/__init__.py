"""Engine builds, tiny test checkpoints and model-repository rendering (run as ``python -m build.<tool>``)."""
