"""bench.latency's reading of a level: the targets of issue 26 and the saturation point."""

from bench.latency import Level, percentile


def level(client_ms, server_ms, clients=1, seconds=10.0):
    return Level("this", clients, seconds, list(client_ms), list(server_ms), 0)


def test_a_level_without_stalls_meets_the_targets():
    steady = level([40 + i % 5 for i in range(200)], [35] * 200)
    assert steady.meets_targets() and max(steady.outside_ms) == 9


def test_one_request_that_waited_a_batcher_timer_fails_the_outside_target():
    stalled = level([40] * 199 + [540], [35] * 200)
    assert percentile(stalled.client_ms, 0.99) == 40  # the p99 alone would not show it
    assert not stalled.meets_targets() and max(stalled.outside_ms) == 505


def test_a_long_tail_fails_the_p99_target():
    tail = level([40] * 190 + [200] * 10, [195] * 200)
    assert not tail.meets_targets()


def test_the_row_marks_the_saturated_level_and_says_whether_it_meets_the_targets():
    row = level([40] * 100, [35] * 100, clients=8).row(saturated=True)
    assert row.split()[1] == "8*" and row.split()[-1] == "yes"
