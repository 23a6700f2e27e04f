"""The PyTorch engine slot: Hugging Face `transformers` generation, greedy, batched with left padding.

One class serves text (Qwen3) and vision-language (Qwen2.5-VL) checkpoints: the VLM adds the image
preprocessing and expands each prompt's single ``<|image_pad|>`` to the image's visual tokens. The text slot also
takes soft tokens (ids past the vocabulary stand for rows of the request's prompt table, fed as `inputs_embeds`)
and LoRA adapters in PEFT's format, several loaded at once, chosen per row (PEFT's mixed-adapter batches).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import LogitsProcessorList, StoppingCriteria, StoppingCriteriaList

from engines.generation import (Generation, GenerationRequest, check_one_placeholder, decoded_image, finish,
                                trim)
from ensemble.errors import RequestError


ATTENTION_BACKENDS = (SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH)
"""cuDNN attention is left out: it builds an execution plan for each new (batch, query, key) shape, and every
decode step brings a new key length (`python -m bench.gpu_engine --cudnn-attention` measures the cost)."""


_ADAPTER_NAME = "task{}"
_BASE = "__base__"
"""PEFT's name for "no adapter" in a mixed batch."""


def _with_adapters(model: torch.nn.Module, adapters: Mapping[int, str], config) -> torch.nn.Module:
    """The base wrapped in PEFT with every adapter loaded under its task's name; a misfit fails here, naming the
    file and field (ensemble/postrank/checkpoint.py)."""
    from peft import PeftModel

    from ensemble.postrank.checkpoint import check_adapter

    wrapped = None
    for task, folder in adapters.items():
        check_adapter(folder, config.get_text_config())
        name = _ADAPTER_NAME.format(int(task))
        if wrapped is None:
            wrapped = PeftModel.from_pretrained(model, folder, adapter_name=name, is_trainable=False)
        else:
            wrapped.load_adapter(folder, adapter_name=name, is_trainable=False)
    return wrapped


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


class _RowsFinished(StoppingCriteria):
    """Per-row stop: end id, stop word or the row's own length limit (rows differ inside a batch)."""

    def __init__(self, requests: Sequence[GenerationRequest], prompt_width: int) -> None:
        self.requests = requests
        self.prompt_width = prompt_width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs) -> torch.BoolTensor:
        generated = input_ids[:, self.prompt_width:].tolist()
        done = [finish(row, request) is not None for row, request in zip(generated, self.requests)]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


@dataclass(frozen=True, slots=True)
class _Batch:
    input_ids: torch.Tensor
    attention_mask: torch.Tensor


class TorchEngine:
    def __init__(self, checkpoint: str, *, vision: bool, device: str = "auto", dtype: str = "auto",
                 model: torch.nn.Module | None = None, random_weights: bool = False,
                 attention: Sequence[SDPBackend] = ATTENTION_BACKENDS, max_decoded_pixels: int = 4194304,
                 adapters: Mapping[int, str] | None = None) -> None:
        """`model` serves instead of the checkpoint's weights (benchmarks build one in memory); the tokenizer
        and image processor still come from `checkpoint`. `random_weights`: the checkpoint's config.json shape with
        random values, made on the device (benchmarks at a real shape with no weights to read). `attention`: the kernels attention may use.
        `max_decoded_pixels`: images are decoded at most this large (or the processor's own maximum).
        `adapters`: LoRA task id -> a PEFT adapter folder, each checked against the base before it loads."""
        from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

        self.device = pick_device(device)
        self.dtype = pick_dtype(dtype, self.device)
        if model is None:
            loader = AutoModelForImageTextToText if vision else AutoModelForCausalLM
            if random_weights:
                from transformers import AutoConfig

                with torch.device(self.device):
                    model = loader.from_config(AutoConfig.from_pretrained(checkpoint), dtype=self.dtype)
            else:
                model = loader.from_pretrained(checkpoint, dtype=self.dtype)
        config = model.config
        self.vocab_size = int(getattr(config, "vocab_size", None) or config.get_text_config().vocab_size)
        self.hidden_size = 0 if vision else int(config.get_text_config().hidden_size)
        self.adapters = {int(task): _ADAPTER_NAME.format(task) for task in (adapters or {})}
        if adapters:
            model = _with_adapters(model, adapters, config)
        self.model = model.to(self.device, self.dtype).eval()
        self.attention = list(attention)
        self.image_processor = None
        self._tokenizer = None
        self._vocabulary = None
        self.checkpoint = checkpoint
        if vision:
            from transformers import AutoImageProcessor

            self.image_processor = AutoImageProcessor.from_pretrained(checkpoint)
            self.image_token_id = int(config.image_token_id)
            self.merge = int(self.image_processor.merge_size)
            size = getattr(self.image_processor, "size", None) or {}
            processor_max = getattr(self.image_processor, "max_pixels", None) or size.get("longest_edge")
            self.max_pixels = min(max_decoded_pixels, int(processor_max or max_decoded_pixels))

    @torch.inference_mode()
    def generate(self, requests: Sequence[GenerationRequest], images: Sequence[bytes] | None = None
                 ) -> list[Generation | RequestError]:
        """One result per request, in order; a request whose image cannot be decoded gets its error."""
        with sdpa_kernel(self.attention):
            return self._generate(requests, images)

    def _generate(self, requests: Sequence[GenerationRequest], images: Sequence[bytes] | None
                  ) -> list[Generation | RequestError]:
        results: list[Generation | RequestError | None] = [None] * len(requests)
        extra: dict[str, torch.Tensor] = {}
        prompts = [list(r.input_ids) for r in requests]
        if self.image_processor is not None:
            prompts, extra = self._with_images(requests, images or [], results)
        live = [i for i, r in enumerate(results) if r is None]
        if live:
            batch = self._left_padded([prompts[i] for i in live], requests[live[0]].pad_id)
            live_requests = [requests[i] for i in live]
            processors = self._constraints(live_requests)
            extra |= self._soft_tokens(batch, live_requests) | self._adapter_rows(live_requests)
            output = self.model.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, **extra,
                logits_processor=LogitsProcessorList(processors),
                max_new_tokens=max(r.max_new_tokens for r in live_requests), do_sample=False,
                eos_token_id=sorted({r.end_id for r in live_requests if r.end_id >= 0}) or None,
                pad_token_id=live_requests[0].pad_id,
                stopping_criteria=StoppingCriteriaList([_RowsFinished(live_requests, batch.input_ids.shape[1])]))
            for row, i in enumerate(live):
                results[i] = trim(output[row, batch.input_ids.shape[1]:].tolist(), requests[i])
        return results  # type: ignore[return-value]

    def _soft_tokens(self, batch: _Batch, requests: Sequence[GenerationRequest]) -> dict[str, torch.Tensor]:
        """Where a row holds soft tokens: the whole batch as `inputs_embeds`, the vocabulary's own embeddings for
        every id (rows without soft tokens get exactly what the model would look up) and the row's table rows at
        its soft tokens; `input_ids` keeps a pad id there, so generation's bookkeeping sees only real ids."""
        if all(r.prompt_table is None for r in requests):
            return {}
        ids = batch.input_ids
        soft = ids >= self.vocab_size
        embeds = self.model.get_input_embeddings()(ids.masked_fill(soft, requests[0].pad_id))
        for row, request in enumerate(requests):
            if request.prompt_table is None:
                continue
            at = soft[row].nonzero().flatten()
            table = torch.from_numpy(request.prompt_table).to(self.device, embeds.dtype)
            embeds[row, at] = table[ids[row, at] - self.vocab_size]
        batch.input_ids.masked_fill_(soft, requests[0].pad_id)
        return {"inputs_embeds": embeds}

    def _adapter_rows(self, requests: Sequence[GenerationRequest]) -> dict[str, list[str]]:
        """Each row's adapter by PEFT name, ``__base__`` for none: with adapters loaded a row without one must say
        so, or PEFT would apply its active adapter."""
        if not self.adapters:
            return {}
        return {"adapter_names": [self.adapters[r.lora_task_id] if r.lora_task_id is not None else _BASE
                                  for r in requests]}

    def _constraints(self, requests: Sequence[GenerationRequest]) -> list:
        """Budget forcing and answer constraints for the rows that ask for them (engines/constraints.py)."""
        if all(r.thinking_budget < 0 and not r.answer_constraint for r in requests):
            return []
        from engines.constraints import ConstraintProcessor, RowState, Vocabulary

        if self._vocabulary is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.checkpoint)
            self._vocabulary = Vocabulary.from_tokenizer(self._tokenizer)
        rows = [RowState(self._vocabulary, r.thinking_budget, r.answer_constraint, r.end_id)
                if r.thinking_budget >= 0 or r.answer_constraint else None for r in requests]
        return [ConstraintProcessor(rows, self._tokenizer)]

    def _left_padded(self, prompts: list[list[int]], pad_id: int) -> _Batch:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt):] = 1
        return _Batch(ids.to(self.device), mask.to(self.device))

    def _with_images(self, requests: Sequence[GenerationRequest], images: Sequence[bytes],
                     results: list) -> tuple[list[list[int]], dict[str, torch.Tensor]]:
        """Each distinct image is decoded (at most `max_pixels`) and preprocessed once, however many rows hold
        it: a cover comes once per task."""
        rows: list[tuple[int, int]] = []  # (request index, index of its distinct image)
        distinct: dict[bytes, int] = {}
        decoded = []
        for i, (request, data) in enumerate(zip(requests, images)):
            try:
                check_one_placeholder(request, self.image_token_id)
                if data not in distinct:
                    decoded.append(decoded_image(data, max_pixels=self.max_pixels))
                    distinct[data] = len(decoded) - 1
            except RequestError as error:
                results[i] = error
                continue
            rows.append((i, distinct[data]))
        if not rows:
            return [list(r.input_ids) for r in requests], {}
        features = self.image_processor(images=decoded, return_tensors="pt")
        del decoded
        grids = features["image_grid_thw"]
        patches = torch.split(features["pixel_values"], grids.prod(-1).tolist())
        order = [image for _, image in rows]
        counts = (grids[order].prod(-1) // (self.merge ** 2)).tolist()
        prompts = [list(r.input_ids) for r in requests]
        for (i, _), count in zip(rows, counts):
            at = prompts[i].index(self.image_token_id)
            prompts[i][at:at + 1] = [self.image_token_id] * int(count)
        return prompts, {"pixel_values": torch.cat([patches[j] for j in order]).to(self.device, self.dtype),
                         "image_grid_thw": grids[order].to(self.device)}
