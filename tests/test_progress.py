"""pipeline/progress.py: the stages' shares of the job's bar, their units, the engine's part."""
import pytest

from pipeline.progress import ENGINE_SPAN, Stage, engine_fraction, run_eta_s, unit_of


def test_the_steps_fill_the_bar_in_order_without_gaps():
    steps = [s for s in Stage if s.span is not None]
    assert steps[0].span[0] == 0.0 and steps[-1].span[1] == 100.0
    for a, b in zip(steps, steps[1:]):
        assert a.span[1] == b.span[0], (a, b)
    assert ENGINE_SPAN == (5.0, 85.0)


def test_engine_fraction_keeps_the_runs_own_shares():
    assert engine_fraction(Stage.STARTING, 0.0) == 0.0
    assert engine_fraction(Stage.ANALYSING, 0.5) == pytest.approx(0.45)
    assert engine_fraction(Stage.FINDING_EVENTS, 0.0) == pytest.approx(0.9)
    assert engine_fraction(Stage.WRITING_OUTPUTS, 0.0) == pytest.approx(0.95)
    assert engine_fraction(Stage.DONE, 1.0) == 1.0


def test_units_and_the_runs_own_eta():
    assert unit_of("analysing frames") == "frames" and unit_of("storing events") == "events"
    assert unit_of(Stage.UPLOADING) == "highlights" and unit_of(None) == ""
    assert str(Stage.EMBEDDING) == "embedding" and Stage("done") is Stage.DONE
    assert run_eta_s(10.0, 0.005) is None and run_eta_s(10.0, 0.5) == 10.0
