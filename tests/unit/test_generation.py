import numpy as np
import pytest

from engines.generation import (Generation, GenerationRequest, arrays_from_generation, request_from_arrays, trim)
from ensemble.errors import RequestError
from ensemble.words import from_word_list, to_word_list

REQ = GenerationRequest(input_ids=(1, 2), max_new_tokens=6, end_id=99, pad_id=0, stop_words=((7, 8),))


def test_word_list_layout_matches_tensorrt_llm():
    array = to_word_list([[1, 2], [3]])
    assert array.tolist() == [[1, 2, 3], [2, 3, -1]]
    assert from_word_list(array) == [[1, 2], [3]]
    assert to_word_list([]).tolist() == [[0], [-1]] and from_word_list(to_word_list([])) == []


def test_trim_at_end_id_excludes_it():
    assert trim([5, 6, 99, 4], REQ) == Generation((5, 6), "end")


def test_trim_at_stop_word_keeps_it():
    assert trim([5, 7, 8, 4], REQ) == Generation((5, 7, 8), "stop_word")


def test_trim_at_length():
    assert trim([1, 2, 3, 4, 5, 6, 7, 8], REQ) == Generation((1, 2, 3, 4, 5, 6), "length")


def slot_arrays(**changes):
    arrays = {"input_ids": np.array([5, 6, 7, 0], dtype=np.int32), "input_lengths": np.array([3], dtype=np.int32),
              "request_output_len": np.array([4], dtype=np.int32), "end_id": np.array([99], dtype=np.int32),
              "pad_id": np.array([0], dtype=np.int32), "stop_words_list": to_word_list([[7, 8]])}
    arrays.update(changes)
    return arrays


def test_request_from_arrays_reads_tensorrt_llm_tensors():
    request = request_from_arrays(slot_arrays(), vocab_size=100, max_new_tokens=16, max_answer_ids=50)
    assert request == GenerationRequest((5, 6, 7), 4, 99, 0, ((7, 8),))


@pytest.mark.parametrize("changes,field", [
    ({"input_ids": np.array([5, 600], dtype=np.int32), "input_lengths": np.array([2], dtype=np.int32)}, "input_ids"),
    ({"input_lengths": np.array([9], dtype=np.int32)}, "input_lengths"),
    ({"request_output_len": np.array([0], dtype=np.int32)}, "request_output_len"),
    ({"request_output_len": np.array([17], dtype=np.int32)}, "request_output_len"),
    ({"end_id": np.array([100], dtype=np.int32)}, "end_id"),
    ({"pad_id": np.array([-4], dtype=np.int32)}, "pad_id"),
    ({"answer_constraint": np.array([b"permutation:51"], dtype=np.object_)}, "answer_constraint"),
])
def test_request_from_arrays_rejects_bad_tensors(changes, field):
    with pytest.raises(RequestError) as info:
        request_from_arrays(slot_arrays(**changes), vocab_size=100, max_new_tokens=16, max_answer_ids=50)
    assert info.value.field == field


def test_arrays_from_generation_shapes():
    arrays = arrays_from_generation(Generation((4, 5), "end"), pad_id=0)
    assert arrays["output_ids"].tolist() == [[4, 5]] and arrays["sequence_length"].tolist() == [2]
    empty = arrays_from_generation(Generation((), "end"), pad_id=0)
    assert empty["output_ids"].shape == (1, 1) and empty["sequence_length"].tolist() == [0]


def test_only_greedy_decoding_is_accepted():
    assert request_from_arrays(slot_arrays(runtime_top_k=np.array([1], np.int32)), vocab_size=100,
                               max_new_tokens=16, max_answer_ids=50).max_new_tokens == 4
    with pytest.raises(RequestError, match="^runtime_top_k must be 1"):
        request_from_arrays(slot_arrays(runtime_top_k=np.array([40], np.int32)), vocab_size=100, max_new_tokens=16,
                            max_answer_ids=50)
