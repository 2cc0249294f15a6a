"""What keeps the server's memory small: the models' sessions without onnxruntime's memory
pattern."""

from __future__ import annotations

from mediasrv.models import turn_model, vad_silero


def test_both_models_run_without_onnxruntime_s_memory_pattern() -> None:
    for session in (vad_silero.load_session(), turn_model.load_session()):
        options = session.get_session_options()
        assert options.enable_mem_pattern is False
        assert (options.intra_op_num_threads, options.inter_op_num_threads) == (1, 1)
