# The serving image of the GPU targets (a10, a800): NVIDIA's Triton image that ships TensorRT-LLM 1.2.1, plus
# this project. The versions and their sources are in engines/stack.py (tests/unit/test_stack.py keeps this file
# in step with it). The hosts need NVIDIA driver R590 or newer (CUDA 13.1).
#
#   docker build -t registry.internal/rmr:1.2.1 .
#   python -m build.k8s --target a10 --image registry.internal/rmr:1.2.1 ...   (docs/deployment.md)
ARG TRITON_IMAGE=nvcr.io/nvidia/tritonserver:26.07-trtllm-python-py3
FROM ${TRITON_IMAGE}

WORKDIR /srv/rmr
COPY pyproject.toml README.md ./
COPY ensemble ensemble
COPY engines engines
COPY server server
COPY build build
COPY clients clients
COPY store store
COPY bench bench
COPY rewards rewards
COPY model_repository model_repository

# TensorRT-LLM pins torch, transformers, xgrammar and more: the image's packages stay exactly as they are. The
# project goes in without its dependencies (its CPU pins, torch==2.13.0 among them, are for the CPU target), then
# the `gpu-image` extra of pyproject.toml, constrained to every version the image already holds.
# The image's Python is the system's (Ubuntu 24.04, PEP 668); tensorrtllm_backend's own Dockerfile sets the same.
ENV PIP_BREAK_SYSTEM_PACKAGES=1
RUN pip list --format=freeze > /tmp/image-constraints.txt \
 && pip install --no-cache-dir --no-deps -e . \
 && python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['gpu-image']))" > /tmp/gpu-image.txt \
 && pip install --no-cache-dir -c /tmp/image-constraints.txt -r /tmp/gpu-image.txt \
 && python3 -c "import sys; from engines.stack import stack_problem; sys.exit(stack_problem('this image'))"

# TP=1 on every target: tritonserver runs as is (tensorrtllm_backend's launch_triton_server.py --no_mpi path for
# world size 1; docs/deployment.md). The rendered repository is mounted at /models.
CMD ["tritonserver", "--model-repository=/models", "--model-control-mode=none", "--strict-readiness=true", \
     "--disable-auto-complete-config", "--exit-on-error=true"]
