from ensemble.tags import split_answer


def test_thinking_and_answer():
    parts = split_answer("<thinking>weigh 1 and 2</thinking>\n<answer>[2,1]</answer>")
    assert parts.thinking == "weigh 1 and 2"
    assert parts.answer == "[2,1]"
    assert parts.tagged and parts.answer_closed and parts.thinking_closed


def test_qwen3_think_tags():
    parts = split_answer("<think>hmm</think><answer>3</answer>")
    assert (parts.thinking, parts.answer) == ("hmm", "3")


def test_last_answer_wins_over_quoted_example():
    parts = split_answer("<answer>[3,1,5,2,4]</answer> was the example; mine: <answer>[1,2]</answer>")
    assert parts.answer == "[1,2]"


def test_answer_inside_thinking_is_ignored():
    parts = split_answer("<thinking>format is <answer>[3,1]</answer></thinking><answer>[1,3]</answer>")
    assert parts.answer == "[1,3]"


def test_missing_closing_answer_tag_is_tolerated():
    parts = split_answer("<thinking>x</thinking><answer>[2,1,3]")
    assert parts.answer == "[2,1,3]" and not parts.answer_closed


def test_truncated_thinking_has_no_answer():
    parts = split_answer("<thinking>I would put [2,1,3] because")
    assert parts.answer is None and not parts.thinking_closed
    assert parts.thinking == "I would put [2,1,3] because"


def test_unclosed_thinking_then_answer_tag_counts():
    parts = split_answer("<thinking>short<answer>[1,2]</answer>")
    assert parts.answer == "[1,2]" and parts.thinking == "short"


def test_untagged_text_is_returned_untagged():
    parts = split_answer("  [2,1]  ")
    assert parts.answer == "[2,1]" and not parts.tagged


def test_empty_text():
    parts = split_answer("")
    assert parts.answer is None and parts.thinking == ""
