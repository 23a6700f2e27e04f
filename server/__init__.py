"""Running the Triton server: the launcher (host side) and the Python-backend glue (inside the stub)."""
