"""The `tensorrtllm` backend model that fills the `reranker_llm` slot on GPU targets.

Parameter keys are exactly those the C++ backend reads, checked in NVIDIA/TensorRT-LLM (release 1.2.x):
- triton_backend/inflight_batcher_llm/src/model_instance_state.cc: gpt_model_type, gpt_model_path,
  batch_scheduler_policy, kv_cache_free_gpu_mem_fraction, max_tokens_in_paged_kv_cache, enable_kv_cache_reuse,
  enable_chunked_context, exclude_input_in_output, max_beam_width, and — read with no fallback, so they must
  be present even when empty — tokenizer_dir, guided_decoding_backend, xgrammar_tokenizer_info_path;
  `dynamic_batching.default_queue_policy.max_queue_size` becomes the executor's queue size.
- triton_backend/inflight_batcher_llm/src/model_state.cc: gpu_device_ids (';' between instances, ',' within).
The tensors are those of all_models/inflight_batcher_llm/tensorrt_llm/config.pbtxt that our steps send, with the
post-ranker's: prompt_embedding_table (the template's ${prompt_embedding_table_data_type}, TYPE_FP16 by default),
prompt_vocab_size, prompt_table_extra_ids (required with KV-cache reuse, docs/multimodal.md), lora_task_id,
lora_weights and lora_config; adapters are prefetched from `lora_prefetch_dir` (docs/lora.md), written by
`python -m build.engine --postrank`.
The instance kind is KIND_CPU as in that template: the backend places the engine on the GPU itself.
"""

from __future__ import annotations

from pathlib import Path

from tritonclient.grpc import model_config_pb2 as mc

from build import pbtxt
from build.engine import LORA_PREFETCH, TOKENIZER_INFO, plan_engine
from build.model_shape import ModelShape
from build.profile import Checkpoints, Profile
from ensemble import tensors as T

BACKEND_PARAMETER_KEYS = frozenset({
    # model_instance_state.cc (NVIDIA/TensorRT-LLM triton_backend/inflight_batcher_llm/src, indexed at 0c8de69)
    "gpt_model_type", "max_tokens_in_paged_kv_cache", "kv_cache_free_gpu_mem_fraction", "cross_kv_cache_fraction",
    "kv_cache_host_memory_bytes", "kv_cache_onboard_blocks", "max_attention_window_size", "sink_token_length",
    "enable_kv_cache_reuse", "multi_block_mode", "enable_context_fmha_fp32_acc", "cuda_graph_mode",
    "cuda_graph_cache_size", "num_nodes", "lora_cache_max_adapter_size", "lora_cache_optimal_adapter_size",
    "lora_cache_gpu_memory_fraction", "lora_cache_host_memory_bytes", "lora_prefetch_dir", "batch_scheduler_policy",
    "speculative_decoding_fast_logits", "tokenizer_dir", "xgrammar_tokenizer_info_path", "guided_decoding_backend",
    "max_beam_width", "iter_stats_max_iterations", "request_stats_max_iterations", "enable_trt_overlap",
    "normalize_log_probs", "enable_chunked_context", "decoding_mode", "medusa_choices", "eagle_choices",
    "lookahead_window_size", "lookahead_ngram_size", "lookahead_verification_set_size", "gpu_weights_percent",
    "recv_poll_period_ms", "gpt_model_path", "encoder_model_path", "exclude_input_in_output",
    "cancellation_check_period_ms", "stats_check_period_ms",
    # model_state.cc (same folder, indexed at 5cdd692)
    "gpu_device_ids", "participant_ids", "executor_worker_path",
})
"""Every parameter the C++ backend reads with GetParameter<...>(key)."""

BACKEND_REQUIRED_KEYS = frozenset({"tokenizer_dir", "xgrammar_tokenizer_info_path", "guided_decoding_backend"})
"""Read outside any try/catch in getGuidedDecodingConfigFromParams: a missing one fails model load."""

PARAMETER_KEYS = frozenset({
    "gpt_model_type", "gpt_model_path", "batch_scheduler_policy", "kv_cache_free_gpu_mem_fraction",
    "max_tokens_in_paged_kv_cache", "enable_kv_cache_reuse", "enable_chunked_context", "exclude_input_in_output",
    "max_beam_width", "tokenizer_dir", "guided_decoding_backend", "xgrammar_tokenizer_info_path", "gpu_device_ids",
    "lora_prefetch_dir",
})
"""Every key we render; a test checks each is one the backend source reads."""


def _tokenizer_info_path(engine_dir: str) -> Path:
    return Path(engine_dir).parent / TOKENIZER_INFO


def tensorrtllm_parameters(profile: Profile, ckpts: Checkpoints) -> dict[str, str]:
    if not ckpts.engine_dir:
        raise SystemExit(f"target {profile.name} serves a TensorRT-LLM engine: give --engine-dir (or RERANKER_ENGINE), "
                         "the engine/ folder that `python -m build.engine` wrote")
    plan = plan_engine(profile, ModelShape.from_checkpoint(ckpts.reranker))
    serving = profile.data["serving"]
    return {
        "gpt_model_type": "inflight_fused_batching",
        "gpt_model_path": ckpts.engine_dir,
        "batch_scheduler_policy": serving["batch_scheduler_policy"],
        "kv_cache_free_gpu_mem_fraction": str(plan.kv_cache_free_gpu_mem_fraction),
        # An absolute cap too: with the VLM on the same GPU, load order must not decide who gets the memory.
        "max_tokens_in_paged_kv_cache": str(plan.kv_cache_tokens),
        "enable_kv_cache_reuse": "true",
        "enable_chunked_context": "true",
        "exclude_input_in_output": "true",
        "max_beam_width": "1",
        "tokenizer_dir": ckpts.reranker,
        # Format regexes from the pre steps (tensors.GUIDED_DECODING_*); the tokenizer info file is written by
        # the engine build (examples/generate_xgrammar_tokenizer_info.py, tensorrtllm_backend docs/guided_decoding.md).
        "guided_decoding_backend": "xgrammar",
        "xgrammar_tokenizer_info_path": str(_tokenizer_info_path(ckpts.engine_dir)),
        "gpu_device_ids": "0",
    } | ({"lora_prefetch_dir": str(Path(ckpts.engine_dir).parent / LORA_PREFETCH)} if ckpts.postrank else {})


def tensorrtllm_config(name: str, profile: Profile, ckpts: Checkpoints) -> mc.ModelConfig:
    serving = profile.data["serving"]
    return mc.ModelConfig(
        name=name, backend="tensorrtllm", max_batch_size=serving["max_batch_size"],
        model_transaction_policy=mc.ModelTransactionPolicy(decoupled=False),
        dynamic_batching=pbtxt.batching(profile, serving["engine_queue_delay_us"]),
        instance_group=[mc.ModelInstanceGroup(count=serving["llm_instances"], kind=mc.ModelInstanceGroup.KIND_CPU)],
        parameters=pbtxt.params(tensorrtllm_parameters(profile, ckpts)),
        **pbtxt.io(T.LLM_SLOT, ragged=frozenset({"input_ids", "prompt_embedding_table", "prompt_table_extra_ids",
                                                 "lora_weights", "lora_config"})))
