from mediasrv.policy.drain import DrainOutcome, DrainWatch


def test_empty_queues_end_the_drain_at_once():
    assert DrainWatch("r", 0.0, 0.5).step(0, None, 0.0) is DrainOutcome.EMPTY


def test_frames_leaving_keep_the_drain_going():
    watch = DrainWatch("r", 0.0, 0.5)
    now = 0.0
    for queued in range(100, 0, -1):
        assert watch.step(queued, now, now) is None  # a frame just left
        now += 0.02
    assert now > 0.5
    assert watch.step(0, now, now) is DrainOutcome.EMPTY


def test_no_frame_sent_for_the_timeout_ends_the_drain():
    watch = DrainWatch("r", 0.0, 0.5)
    assert watch.step(10, None, 0.0) is None
    assert watch.step(10, None, 0.49) is None
    assert watch.step(10, None, 0.50) is DrainOutcome.TIMEOUT
    assert watch.deadline(None) == 0.5


def test_a_frame_sent_before_the_watch_began_is_not_progress():
    watch = DrainWatch("r", 1.0, 0.5)
    assert watch.step(9, 0.9, 1.49) is None
    assert watch.step(9, 0.9, 1.5) is DrainOutcome.TIMEOUT


def test_the_no_progress_clock_restarts_at_each_frame_sent():
    watch = DrainWatch("r", 0.0, 0.5)
    assert watch.step(9, 0.4, 0.89) is None
    assert watch.deadline(0.4) == 0.9
    assert watch.step(9, 0.4, 0.9) is DrainOutcome.TIMEOUT


def test_queue_sizes_moving_without_frames_sent_is_not_progress():
    watch = DrainWatch("r", 0.0, 0.5)
    assert watch.step(9, None, 0.3) is None  # overflow moved into the queue: no frame left
    assert watch.step(14, None, 0.5) is DrainOutcome.TIMEOUT

