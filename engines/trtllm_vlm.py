"""The VLM slot on TensorRT-LLM 1.2.1's PyTorch backend (`tensorrt_llm.LLM`), for GPU targets.

TensorRT-LLM 1.2.1 has no compiled-engine flow for Qwen2.5-VL and no Triton model for it; its LLM API runs
`Qwen2_5_VLForConditionalGeneration` with in-flight batching. This class takes the same requests as the
PyTorch slot (prompt ids holding one ``<|image_pad|>``, an encoded image) so the ensemble never changes.
The prompt goes in as text: the LLM API's Qwen2.5-VL input processor expands the placeholder itself.
"""

from __future__ import annotations

from collections.abc import Sequence

from engines.generation import (Generation, GenerationRequest, check_one_placeholder, decoded_image,
                                faithful_text_prompt, trim)
from ensemble.errors import RequestError

REQUIRED_VERSION = "1.2.1"


class TensorRTLLMUnavailable(RuntimeError):
    pass


def import_tensorrt_llm():
    """The `tensorrt_llm` module, or a load-time error naming the package and version."""
    try:
        import tensorrt_llm
    except ImportError as exc:
        raise TensorRTLLMUnavailable(
            f"the VLM slot of this target needs TensorRT-LLM {REQUIRED_VERSION} (Python package `tensorrt_llm`), "
            f"which is not installed: serve GPU targets from nvcr.io/nvidia/tritonserver:25.12-trtllm-python-py3, "
            f"or render the `cpu` target for the PyTorch slot ({exc})") from exc
    if tensorrt_llm.__version__ != REQUIRED_VERSION:
        raise TensorRTLLMUnavailable(f"TensorRT-LLM {tensorrt_llm.__version__} found; this slot is built and "
                                     f"tested against {REQUIRED_VERSION}")
    return tensorrt_llm


class TensorRTLLMVisionEngine:
    def __init__(self, checkpoint: str, *, kv_cache_gib: float, device_id: int = 0,
                 max_decoded_pixels: int = 4194304) -> None:
        tensorrt_llm = import_tensorrt_llm()
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
        text = config.get_text_config()
        kv_heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
        kv_bytes_per_token = 2 * text.num_hidden_layers * kv_heads * head_dim * 2  # K and V, BF16
        # Multimodal prompts cannot share KV blocks by token ids (image tokens are placeholders), so reuse is
        # off (examples/llm-api/quickstart_multimodal.py forces the same). A token cap, not a fraction of free
        # memory, keeps the re-ranker's share whichever model Triton loads first.
        self.llm = tensorrt_llm.LLM(
            model=checkpoint,
            kv_cache_config=KvCacheConfig(enable_block_reuse=False,
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
            params = [self._sampling(
                max_tokens=requests[i].max_new_tokens, end_id=requests[i].end_id, pad_id=requests[i].pad_id, top_k=1,
                stop=[self.tokenizer.decode(list(w)) for w in requests[i].stop_words] or None,
                include_stop_str_in_output=True, add_special_tokens=False) for i in live]
            outputs = self.llm.generate(inputs, params, use_tqdm=False)
            for i, output in zip(live, outputs):
                results[i] = trim(list(output.outputs[0].token_ids), requests[i])
        return results  # type: ignore[return-value]
