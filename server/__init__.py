"""Triton glue in two halves: `server.stub` runs inside the Triton Python-backend stub (it imports
triton_python_backend_utils); `server.host` starts and stops tritonserver from the host side."""
