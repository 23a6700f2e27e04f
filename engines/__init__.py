"""Engine-slot implementations that run inside Triton Python-backend models (PyTorch, TensorRT-LLM LLM API)."""
