"""The schedule's arithmetic: stable slots, spread first probes, no catch-up bursts."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.runtime.scheduler import LagHistogram, first_delay, grid_offset, next_due, stable_fraction

names = st.text(min_size=1, max_size=30)
intervals = st.floats(1, 3600)
times = st.floats(0, 1e7)


@given(names)
def test_stable_fraction_is_stable_and_in_range(name: str) -> None:
    assert stable_fraction(name) == stable_fraction(name)
    assert 0 <= stable_fraction(name) < 1


@given(times, st.floats(0, 3600), intervals)
def test_next_due_is_the_first_grid_point_not_before(after: float, offset: float, interval: float) -> None:
    due = next_due(after, offset=offset, interval=interval)
    assert due >= after - 1e-6
    assert due - interval < after + 1e-6
    steps = (due - offset) / interval
    assert steps == pytest.approx(round(steps), abs=1e-6)


@given(names, intervals, times, st.floats(0, 10000))
def test_first_delay_stays_within_the_window_and_the_interval(
    name: str, interval: float, now: float, window: float
) -> None:
    delay = first_delay(grid_offset(name, interval), interval, now=now, window=window)
    assert 0 <= delay <= min(window, interval) + 1e-6


@given(names, intervals, times)
def test_with_a_full_window_the_first_probe_is_on_the_grid(name: str, interval: float, now: float) -> None:
    due = now + first_delay(grid_offset(name, interval), interval, now=now, window=interval)
    offset = stable_fraction(name) * interval
    assert due == pytest.approx(next_due(now, offset=offset, interval=interval), abs=1e-6 * max(1.0, now))


def test_few_new_targets_are_probed_at_once() -> None:
    # Three targets at 50 per second: all within 60 ms, whatever their interval.
    assert all(
        first_delay(grid_offset(f"t{index}", 3600), 3600, now=12345.6, window=3 / 50) <= 0.06 for index in range(3)
    )


def test_lag_histogram_is_cumulative() -> None:
    histogram = LagHistogram()
    for seconds in (0.001, 0.3, 0.3, 7, 1000):
        histogram.observe(seconds)
    buckets = dict(histogram.cumulative())
    assert buckets[0.005] == 1
    assert buckets[0.5] == 3
    assert buckets[10.0] == 4
    assert buckets[math.inf] == 5
    assert histogram.observations == 5
