"""A post-rank request's prompt table: the post-ranker's encoder (checkpoint.py, encoder.py) run on the user's and each
candidate's features, in the hidden size of the base whose tokenizer the steps hold (its checkpoint folder)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ensemble.arrays import Arrays
from ensemble.config import PipelineConfig
from ensemble.errors import RequestError
from ensemble.postrank import prompt
from ensemble.postrank.checkpoint import PostRanker, base_text_config
from ensemble.postrank.encoder import encode, query_vector
from ensemble.postrank.features import Domain, EncoderInputs, encoder_inputs, query_inputs
from ensemble.postrank.request import PostRankItem


class SoftTokens:
    """The post-ranker's encoder on the base's shape: a request's user and candidates -> its prompt table."""

    def __init__(self, config: PipelineConfig, tokenizer: Any) -> None:
        """Without a post-ranker ([postrank] checkpoint empty) it loads nothing and refuses every request."""
        self.folder = config.postrank.checkpoint
        self.task_id = config.postrank.lora_task_id
        self.ranker, self.vocab_size, self.hidden_size, self.placeholder = None, 0, 0, -1
        if self.folder:
            base = base_text_config(Path(getattr(tokenizer, "name_or_path", "")))
            self.vocab_size, self.hidden_size = int(base.vocab_size), int(base.hidden_size)
            self.ranker = PostRanker.load(self.folder, self.hidden_size)
            self.placeholder = prompt.soft_token_id(tokenizer)

    def table(self, query: str, user: Mapping[str, object], candidates: Sequence[PostRankItem]) -> np.ndarray:
        """[1 + n, hidden] float32: the user's row, then each candidate's."""
        users, items = self.inputs(user, candidates)
        ranker = self._ranker()
        q = query_vector(ranker.weights, *query_inputs(ranker.schema, query))
        return np.concatenate([encode(ranker.weights, Domain.USER, q, users),
                               encode(ranker.weights, Domain.ITEM, q, items)])

    def inputs(self, user: Mapping[str, object], candidates: Sequence[PostRankItem]
               ) -> tuple[EncoderInputs, EncoderInputs]:
        """The user's and the candidates' encoder inputs: every feature checked against the schema (a refusal names
        the candidate and the feature), nothing encoded yet. The BLS checks a whole request this way before any
        model runs."""
        schema = self._ranker().schema
        return (encoder_inputs(schema, Domain.USER, [("user", user)]),
                encoder_inputs(schema, Domain.ITEM,
                               [(f"candidates[{i}].features", c.features) for i, c in enumerate(candidates)]))

    def _ranker(self) -> PostRanker:
        if self.ranker is None:
            raise RequestError("request", "cannot be post-ranked: this deployment has no post-ranker "
                               "([postrank] checkpoint is empty)")
        return self.ranker

    def tensors(self, table: np.ndarray, soft: prompt.SoftPrompt) -> Arrays:
        return {"prompt_embedding_table": table.astype(np.float16),
                "prompt_vocab_size": np.array([len(table)], dtype=np.int32),
                "prompt_table_extra_ids": np.asarray(soft.extra_ids, dtype=np.uint64),
                "lora_task_id": np.array([self.task_id], dtype=np.uint64)}
