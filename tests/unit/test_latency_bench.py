"""bench.latency's reading of a level: the targets of issue 26 and the saturation point."""

from bench.latency import Level, percentile, saturation


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
    row = level([40] * 100, [35] * 100, clients=8).row(saturated=True, past=False)
    assert row.split()[1] == "8*" and row.split()[-1] == "yes"


def test_saturation_is_the_first_level_near_the_highest_throughput_and_later_levels_are_queueing():
    """45 req/s at 2 clients and 48 at 8 (noise of a busy machine): the knee is 2, and 4 and 8 clients only queue."""
    levels = [level([25] * 400, [20] * 400, clients=1), level([44] * 455, [20] * 455, clients=2),
              level([93] * 428, [20] * 428, clients=4), level([164] * 484, [20] * 484, clients=8)]
    assert saturation(levels).clients == 2
    assert level([164] * 10, [20] * 10, clients=8).row(saturated=False, past=True).split()[-1] == "queue"
    assert saturation(levels[:1] + [level([30] * 900, [20] * 900, clients=2)]).clients == 2
