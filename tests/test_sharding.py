"""--shard K/N: replicas split the targets by a stable hash of their names."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.runtime.scheduler import Shard
from tests.support.exporter_process import ExporterProcess
from tests.support.servers import ScenarioServers


@given(st.lists(st.text(min_size=1, max_size=40), max_size=50, unique=True), st.integers(1, 12))
def test_every_target_lands_in_exactly_one_shard(names: list[str], count: int) -> None:
    shards = [Shard(index, count) for index in range(count)]
    for name in names:
        assert sum(shard.owns(name) for shard in shards) == 1


@pytest.mark.parametrize("text", ["3/3", "1", "a/b", "0/0", "-1/2"])
def test_invalid_shards(text: str) -> None:
    with pytest.raises(ValueError, match="invalid shard"):
        Shard.parse(text)


def test_replicas_split_the_targets(tmp_path: Path, servers: ScenarioServers) -> None:
    port = servers.smtp()
    names = [f"relay-{index}" for index in range(12)]
    config = tmp_path / "config.yml"
    config.write_text(
        "defaults: {interval: 1h, timeout: 5s, tls: none, ehlo_name: probe.test}\ntargets:\n"
        + "".join(f"  - {{name: {name}, host: 127.0.0.1, port: {port}}}\n" for name in names)
    )
    probed: list[set[str]] = []
    for index in range(3):
        with ExporterProcess(config, tmp_path / f"shard-{index}.log", extra_args=["--shard", f"{index}/3"]) as replica:
            scrape = replica.wait_for(lambda s: s.value("smtp_exporter_targets") is not None)
            mine = {labels["target"] for labels, _ in scrape.find("smtp_target_info")}
            assert scrape.value("smtp_exporter_targets") == len(mine)
            probed.append(mine)
    assert set().union(*probed) == set(names)
    assert sum(len(share) for share in probed) == len(names)
