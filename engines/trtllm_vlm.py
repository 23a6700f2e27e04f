"""The VLM slot on TensorRT-LLM 1.2.1's PyTorch backend (`tensorrt_llm.LLM`), for GPU targets.

TensorRT-LLM 1.2.1 has no compiled-engine flow for Qwen2.5-VL and no Triton model for it; its LLM API runs
`Qwen2_5_VLForConditionalGeneration` with in-flight batching. This class takes the same requests as the
PyTorch slot (prompt ids holding one ``<|image_pad|>``, an encoded image) so the ensemble never changes.
The prompt goes in as text: the LLM API's Qwen2.5-VL input processor expands the placeholder itself.

Answers are bounded as on the PyTorch slot: the output's format is a guided-decoding regex (xgrammar,
`GuidedDecodingParams(regex=...)`), and reasoning is cut at the request's thinking budget by a logits processor
(engines/constraints.py: LlmApiBudget). `sampling_options` says what each request sends; tests check it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engines.constraints import LlmApiBudget, RowState, Vocabulary
from engines.generation import (Generation, GenerationRequest, check_one_placeholder, decoded_image,
                                faithful_text_prompt, trim)
from engines.stack import stack_problem
from ensemble.constraint import AnswerConstraint
from ensemble.errors import RequestError

GUIDED_DECODING_BACKEND = "xgrammar"


class TensorRTLLMUnavailable(RuntimeError):
    pass


def import_tensorrt_llm():
    """The `tensorrt_llm` module, or a load-time error naming the package, version and image."""
    problem = stack_problem("the VLM slot of this target")
    if problem:
        raise TensorRTLLMUnavailable(f"{problem}; or render the `cpu` target for the PyTorch slot")
    import tensorrt_llm

    return tensorrt_llm


MODELOPT_QUANT_FILE = "hf_quant_config.json"


def quantization_problem(checkpoint: Path) -> str | None:
    """Why this checkpoint would not load as the quantized model it is, or None.

    TensorRT-LLM's PyTorch backend reads a ModelOpt export (`hf_quant_config.json`, e.g. quant_algo W4A16_AWQ)
    or a `quantization_config` in config.json of the kinds its loader knows (`ModelConfig.load_hf_quant_config`
    in tensorrt_llm/_torch/model_config.py: fp8, mxfp4, compressed-tensors, nvfp4, ...). It has no branch for
    AutoAWQ's ``quant_method: awq``: such a checkpoint would not load as W4A16 (and, 6 GiB on the a10 plan,
    would not fit as anything else)."""
    if (checkpoint / MODELOPT_QUANT_FILE).is_file():
        return None
    try:
        config = json.loads((checkpoint / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None  # the LLM API names a missing or broken config itself
    method = (config.get("quantization_config") or {}).get("quant_method")
    if method in UNREAD_QUANT_METHODS:
        return (f"{checkpoint} is an {UNREAD_QUANT_METHODS[method]} checkpoint (quantization_config.quant_method = "
                f"{method!r}), which TensorRT-LLM's PyTorch backend does not load as quantized; export the BF16 "
                "checkpoint with NVIDIA ModelOpt as W4A16_AWQ (docs/deployment.md, 'The VLM on one A10')")
    return None


UNREAD_QUANT_METHODS = {"awq": "AutoAWQ"}
"""config.json quant methods with no branch in the loader (a ModelOpt W4A16_AWQ export is the supported form)."""


def sampling_options(request: GenerationRequest, stop_texts: Sequence[str]) -> dict[str, Any]:
    """`SamplingParams` fields of one request (greedy), with `guided_regex`: the output format the request's
    answer constraint and thinking budget allow (GuidedDecodingParams(regex=...) on the slot)."""
    return {"max_tokens": request.max_new_tokens, "end_id": request.end_id, "pad_id": request.pad_id, "top_k": 1,
            "stop": list(stop_texts) or None, "include_stop_str_in_output": True, "add_special_tokens": False,
            "guided_regex": request.answer_constraint.output_regex(request.thinking_budget)}


class TensorRTLLMVisionEngine:
    def __init__(self, checkpoint: str, *, kv_cache_gib: float, kv_cache_fraction: float, device_id: int = 0,
                 max_decoded_pixels: int = 4194304) -> None:
        tensorrt_llm = import_tensorrt_llm()
        problem = quantization_problem(Path(checkpoint))
        if problem:
            raise TensorRTLLMUnavailable(problem)
        from tensorrt_llm.llmapi import KvCacheConfig
        from transformers import AutoConfig, AutoTokenizer

        import torch

        torch.cuda.set_device(device_id)
        self.tokenizer = AutoTokenizer.from_pretrained(checkpoint)
        self.added = dict(self.tokenizer.get_added_vocab())
        self.max_pixels = max_decoded_pixels
        config = AutoConfig.from_pretrained(checkpoint)
        self.vocab_size = int(config.get_text_config().vocab_size)
        self.image_token_id = int(config.image_token_id)
        self._sampling = tensorrt_llm.SamplingParams
        from tensorrt_llm.sampling_params import GuidedDecodingParams

        self._guide = GuidedDecodingParams
        self._vocabulary = Vocabulary.from_tokenizer(self.tokenizer)
        text = config.get_text_config()
        kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        kv_bytes_per_token = 2 * text.num_hidden_layers * kv_heads * head_dim * 2  # K and V, BF16
        # Multimodal prompts cannot share KV blocks by token ids (image tokens are placeholders), so reuse is
        # off (examples/llm-api/quickstart_multimodal.py forces the same). The cache is the smaller of the token
        # cap and the fraction of free memory; build/memory.py sizes the fraction so that the cap binds whichever
        # model Triton loads first. No overlap scheduler: the budget processor must see each token it forces.
        self.llm = tensorrt_llm.LLM(
            model=checkpoint, guided_decoding_backend=GUIDED_DECODING_BACKEND, disable_overlap_scheduler=True,
            kv_cache_config=KvCacheConfig(enable_block_reuse=False, free_gpu_memory_fraction=kv_cache_fraction,
                                          max_tokens=int(kv_cache_gib * 1024 ** 3 // kv_bytes_per_token)))

    def generate(self, requests: Sequence[GenerationRequest], images: Sequence[bytes]) -> list[Generation | RequestError]:
        results: list[Generation | RequestError | None] = [None] * len(requests)
        inputs, live = [], []
        for i, (request, data) in enumerate(zip(requests, images)):
            prompt = self.tokenizer.decode(list(request.input_ids), skip_special_tokens=False)
            try:
                check_one_placeholder(request, self.image_token_id)
                # The LLM API takes the prompt as text and encodes it again: request text that spells a control
                # token would become one, so such a prompt is refused rather than sent.
                if not faithful_text_prompt(prompt, request.input_ids, self.added):
                    raise RequestError("query", "must not spell chat control tokens (this engine re-reads text)")
                pixels = decoded_image(data, max_pixels=self.max_pixels)
            except RequestError as error:
                results[i] = error
                continue
            inputs.append({"prompt": prompt, "multi_modal_data": {"image": [pixels]}})
            live.append(i)
        if inputs:
            params = [self._params(requests[i]) for i in live]
            outputs = self.llm.generate(inputs, params, use_tqdm=False)
            for i, output in zip(live, outputs):
                results[i] = trim(list(output.outputs[0].token_ids), requests[i])
        return results  # type: ignore[return-value]

    def _params(self, request: GenerationRequest):
        options = sampling_options(request, [self.tokenizer.decode(list(w)) for w in request.stop_words])
        guide = self._guide(regex=options.pop("guided_regex"))
        budget = None
        if request.thinking_budget >= 0:
            budget = LlmApiBudget(RowState(self._vocabulary, request.thinking_budget, AnswerConstraint(),
                                           request.end_id), self.tokenizer)
        return self._sampling(**options, guided_decoding=guide, logits_processor=budget)
