from mediasrv.policy.drain import DrainOutcome, DrainTracker, DrainWatch


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


# --- DrainTracker (the per-response drain threads' step; goes with them) ----------

def test_tracker_empty_queues_end_the_drain_at_once():
    assert DrainTracker("r", 0.0, 0.5).step(0, 0, 0.0) is DrainOutcome.EMPTY


def test_tracker_frames_leaving_keep_the_drain_going():
    tracker = DrainTracker("r", 0.0, 0.5)
    now, sent = 0.0, 0
    for queued in range(100, 0, -1):
        assert tracker.step(queued, sent, now) is None
        now += 0.02
        sent += 1
    assert now > 0.5
    assert tracker.step(0, sent, now) is DrainOutcome.EMPTY


def test_tracker_no_frame_sent_for_the_timeout_ends_the_drain():
    tracker = DrainTracker("r", 0.0, 0.5)
    assert tracker.step(10, 7, 0.0) is None
    assert tracker.step(10, 7, 0.49) is None
    assert tracker.step(10, 7, 0.50) is DrainOutcome.TIMEOUT


def test_tracker_queue_sizes_moving_without_frames_sent_is_not_progress():
    tracker = DrainTracker("r", 0.0, 0.5)
    tracker.step(10, 3, 0.0)
    assert tracker.step(9, 3, 0.3) is None  # a delta became frames: no frame left
    assert tracker.step(14, 3, 0.5) is DrainOutcome.TIMEOUT


def test_tracker_the_no_progress_clock_restarts_at_each_frame_sent():
    tracker = DrainTracker("r", 0.0, 0.5)
    tracker.step(10, 3, 0.0)
    assert tracker.step(9, 4, 0.4) is None
    assert tracker.step(9, 4, 0.89) is None
    assert tracker.step(9, 4, 0.9) is DrainOutcome.TIMEOUT
