"""The state file (--storage.path): results kept across restarts, through real exporter processes.

A restart must not blank what runs rarely: the test message (hourly), DNS
lookups of domains, and the last probe result of every target. The tests stop
and start real exporters, kill them with SIGKILL while they write, and feed
them files they must refuse.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import re
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from exporter.config.model import AuthConfig, ProbeOptions, TlsMode, probe_spec
from exporter.config.secret import Secret
from exporter.probe.result import Failure, Phase, ProbeResult, Reason
from exporter.probe.run import run_probe
from exporter.scan.engine import scan
from exporter.scan.result import ScanResult
from exporter.state.codec import decode, encode, identity
from exporter.state.store import FORMAT, SCHEMA_VERSION, Current, Section, StateStore
from exporter.tls.context import TlsClients
from tests.support.dns_servers import Zone, start_dns_servers, unavailable_reason
from tests.support.environment import require
from tests.support.exporter_process import ExporterProcess
from tests.support.pki import SERVER_NAME, Pki
from tests.support.servers import (
    ScenarioServers,
    Script,
    ShapingHandler,
    closed_port,
    gated_plain_server,
    read_command,
    send,
)

PASSWORD = "Kp4-state-file-NEVER-3vQ"
USER = "probe@mail.test"
SECRET_FORMS = (
    PASSWORD,
    base64.b64encode(PASSWORD.encode()).decode(),
    base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode(),
)
PASSWORD_ENV = "SMTP_EXPORTER_STATE_TEST_PASSWORD"


@pytest.fixture
def gate(servers: ScenarioServers) -> Iterator[tuple[int, threading.Event]]:
    """A plain server that answers only while the gate is open: a probe of it cannot finish while closed."""
    release = threading.Event()
    release.set()
    port = servers.scripted(gated_plain_server(release))
    yield port, release
    release.set()  # let conversations still waiting end


def _restored(log: str, section: str) -> dict[str, int]:
    match = re.search(rf"msg=\"kept results restored\" section={section} (.*)", log)
    assert match, log
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}


def test_the_codec_round_trips_a_real_probe_result(pki: Pki, servers: ScenarioServers, cert_dir: Path) -> None:
    port = servers.smtp(tls_context=pki.leaf(SERVER_NAME).server_context(cert_dir, "state-codec"))
    options = ProbeOptions(TlsMode.STARTTLS, 5.0, "probe.test", ca_file=pki.ca_file)
    spec = probe_spec("127.0.0.1", port, options, server_name=SERVER_NAME)
    result = asyncio.run(run_probe(spec, TlsClients().for_spec(spec), name="codec", keep_transcript=True))
    assert result.success
    assert result.tls is not None
    assert result.transcript
    stored = json.loads(json.dumps(encode(result)))
    restored = decode(ProbeResult, stored)
    # Everything the metrics read comes back; the DER and the transcript are not kept.
    assert encode(restored) == stored
    assert restored.tls is not None
    assert restored.tls.leaf is not None
    assert restored.tls.leaf.not_after == result.tls.leaf.not_after  # type: ignore[union-attr]
    assert restored.tls.leaf.der == b""
    assert restored.transcript == ()
    assert "der" not in json.dumps(stored["tls"]["chain"][0])
    assert "transcript" not in stored


def test_the_codec_round_trips_a_real_scan_result(pki: Pki, servers: ScenarioServers, cert_dir: Path) -> None:
    port = servers.smtp(tls_context=pki.leaf(SERVER_NAME).server_context(cert_dir, "state-scan"))
    options = ProbeOptions(TlsMode.STARTTLS, 5.0, "probe.test", ca_file=pki.ca_file)
    result = asyncio.run(scan(probe_spec("127.0.0.1", port, options, server_name=SERVER_NAME)))
    assert result.success
    assert result.versions
    stored = json.loads(json.dumps(encode(result)))
    assert decode(ScanResult, stored) == result


def test_a_password_is_never_encoded_and_not_part_of_the_configs_identity() -> None:
    def spec(password: str) -> object:
        options = ProbeOptions(TlsMode.STARTTLS, 5.0, "probe.test", auth=AuthConfig(USER, Secret(password)))
        return probe_spec("mail.test", 587, options)

    with pytest.raises(TypeError, match="Secret"):
        encode(spec(PASSWORD))
    assert identity(spec(PASSWORD)) == identity(spec("another one"))
    assert identity(spec(PASSWORD)) != identity(probe_spec("mail.test", 25, ProbeOptions(TlsMode.STARTTLS, 5.0, "x")))


def _config(path: Path, lines: list[str], *, interval: str = "1h") -> Path:
    defaults = ["defaults:", f"  interval: {interval}", "  timeout: 4s", "  ehlo_name: probe.test"]
    path.write_text("\n".join([*defaults, *lines]) + "\n")
    return path


def test_a_restart_keeps_results_and_the_test_message_with_their_timestamps(
    tmp_path: Path, servers: ScenarioServers, gate: tuple[int, threading.Event]
) -> None:
    gated_port, release = gate
    mail = ShapingHandler()
    send_port = servers.smtp(handler=mail)
    state = tmp_path / "state.json"
    targets = [
        "targets:",
        f"  - {{name: gated, host: 127.0.0.1, port: {gated_port}, tls: none}}",
        f"  - name: send\n    host: 127.0.0.1\n    port: {send_port}\n    tls: none",
        "    send: {from: probe@mail.test, to: [postmaster@mail.test], interval: 1h}",
    ]
    config = _config(tmp_path / "config.yml", targets)
    arguments = ["--storage.path", str(state)]
    with ExporterProcess(config, tmp_path / "first.log", extra_args=arguments) as first:
        first.wait_for(lambda s: s.value("smtp_send_timestamp_seconds", target="send") is not None)
        before = first.wait_for_probes(["gated", "send"])
    # SIGTERM: the exporter writes what changed since its last write before it exits.
    assert len(mail.messages) == 1

    release.clear()
    with ExporterProcess(config, tmp_path / "second.log", extra_args=arguments) as second:
        after = second.scrape()
        # The gate is closed: no probe of "gated" can have finished, so this is the kept result.
        for name in ("smtp_probe_timestamp_seconds", "smtp_probe_success", "smtp_probe_duration_seconds"):
            assert after.value(name, target="gated") == before.value(name, target="gated"), name
        assert after.value("smtp_send_timestamp_seconds", target="send") == before.value(
            "smtp_send_timestamp_seconds", target="send"
        )
        assert after.value("smtp_send_success", target="send") == 1
        # Counters start again from zero, as Prometheus expects of a restarted process.
        assert not after.value("smtp_probes_total", target="gated")
        # The next probe of "send" comes, but its test message is due an hour after the kept one.
        second.wait_for(lambda s: (s.value("smtp_probes_total", target="send") or 0) >= 1)
        assert len(mail.messages) == 1
        assert _restored(second.log_text(), "probe_results")["restored"] == 2
        assert _restored(second.log_text(), "test_messages")["restored"] == 1
        release.set()
        second.wait_for(lambda s: (s.value("smtp_probes_total", target="gated") or 0) >= 1)

    # Another server under the same name, and a target removed: their results are not restored.
    other = _config(
        tmp_path / "other.yml", ["targets:", f"  - {{name: gated, host: 127.0.0.1, port: {closed_port()}}}"]
    )
    with ExporterProcess(other, tmp_path / "third.log", extra_args=arguments) as third:
        probes = _restored(third.log_text(), "probe_results")
        assert probes == {
            "restored": 0,
            "dropped_not_configured": 1,
            "dropped_config_changed": 1,
            "dropped_unreadable": 0,
        }
        assert third.scrape().value("smtp_probe_timestamp_seconds", target="gated") != before.value(
            "smtp_probe_timestamp_seconds", target="gated"
        )


def test_a_restart_keeps_the_scan_series_with_its_timestamp(
    tmp_path: Path, pki: Pki, servers: ScenarioServers, cert_dir: Path
) -> None:
    port = servers.smtp(tls_context=pki.leaf(SERVER_NAME).server_context(cert_dir, "state-scan-restart"))
    target = f"  - {{name: scanned, host: 127.0.0.1, port: {port}, server_name: {SERVER_NAME}, tls_scan_interval: 6h}}"
    config = _config(tmp_path / "config.yml", [f"  ca_file: {pki.ca_file}", "targets:", target])
    series = ("smtp_tls_scan_timestamp_seconds", "smtp_tls_scan_success", "smtp_tls_scan_duration_seconds")
    with ExporterProcess(config, tmp_path / "first.log") as first:
        before = first.wait_for(lambda s: s.value("smtp_tls_scan_timestamp_seconds", target="scanned") is not None)
    with ExporterProcess(
        config, tmp_path / "second.log", extra_args=["--storage.path", str(first.state_file)]
    ) as second:
        after = second.scrape()
        for name in series:
            assert after.value(name, target="scanned") == before.value(name, target="scanned"), name
        assert _restored(second.log_text(), "tls_scans")["restored"] == 1
        # The next scan is six hours after the kept one: the probe comes, the scan does not.
        later = second.wait_for(lambda s: (s.value("smtp_probes_total", target="scanned") or 0) >= 1)
        assert later.value("smtp_tls_scan_timestamp_seconds", target="scanned") == before.value(
            "smtp_tls_scan_timestamp_seconds", target="scanned"
        )
        assert "scan finished" not in second.log_text()


def test_a_restart_keeps_the_domains_pairs_and_lookup_without_dns(
    tmp_path: Path, gate: tuple[int, threading.Event]
) -> None:
    require(unavailable_reason(), "the state test with real nsd and unbound")
    gated_port, release = gate
    dns = start_dns_servers([Zone("keep.test", "@ MX 10 mx\nmx A 127.0.0.1\n")], tmp_path / "dns")
    host, port = dns.resolver_address
    lines = [
        f"dns: {{nameservers: ['{host}:{port}'], timeout: 2s}}",
        "domains:",
        f"  - {{name: kept, domain: keep.test, port: {gated_port}, tls: none, dns_interval: 1h}}",
    ]
    config = _config(tmp_path / "config.yml", lines)
    pair = "kept mx=mx.keep.test address=127.0.0.1"
    labels = {"target": "kept", "mx": "mx.keep.test", "address": "127.0.0.1"}
    try:
        with ExporterProcess(config, tmp_path / "first.log") as first:
            before = first.wait_for(lambda s: s.value("smtp_probe_timestamp_seconds", **labels) is not None)
            first.wait_for_state_file(lambda text: '"dns_lookups":{"kept"' in text and pair in text)
    finally:
        # The second run has no DNS at all: the pairs can only come from the state file.
        dns.stop()
    release.clear()
    with ExporterProcess(
        config, tmp_path / "second.log", extra_args=["--storage.path", str(first.state_file)]
    ) as second:
        after = second.scrape()
        for name in ("smtp_domain_lookup_timestamp_seconds", "smtp_domain_lookup_success", "smtp_domain_mx_hosts"):
            assert after.value(name, target="kept") == before.value(name, target="kept"), name
        # The gate is closed: the pair's probe cannot have finished, so this is the kept result.
        assert after.value("smtp_probe_timestamp_seconds", **labels) == before.value(
            "smtp_probe_timestamp_seconds", **labels
        )
        assert _restored(second.log_text(), "dns_lookups")["restored"] == 1
        release.set()


def _document(sections: str = '{"probe_results": {}}', version: int = SCHEMA_VERSION) -> str:
    return json.dumps({"format": FORMAT, "version": version, "written_at": 0.0})[:-1] + f', "sections": {sections}}}'


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (_document(version=SCHEMA_VERSION + 1), "newer"),
        (_document()[:40], "corrupt"),
        ('{"groups": [{"name": "prometheus rules"}]}', "foreign"),
        ("\x00\xff not json at all", "corrupt"),
        ("", "corrupt"),
    ],
    ids=["later-schema", "truncated", "foreign", "garbage", "empty"],
)
def test_an_unusable_state_file_is_set_aside_and_the_exporter_starts_clean(
    tmp_path: Path, content: str, reason: str
) -> None:
    state = tmp_path / "state.json"
    state.write_text(content, encoding="latin-1")
    config = _config(
        tmp_path / "config.yml", ["targets:", f"  - {{name: closed, host: 127.0.0.1, port: {closed_port()}}}"]
    )
    with ExporterProcess(config, tmp_path / "exporter.log", extra_args=["--storage.path", str(state)]) as exporter:
        exporter.wait_for_probes(["closed"])
        assert "state file cannot be used; set aside" in exporter.log_text()
        [aside] = tmp_path.glob(f"state.json.{reason}-*")
        assert aside.read_text(encoding="latin-1") == content
        written = json.loads(exporter.wait_for_state_file(lambda text: '"closed"' in text))
        assert written["version"] == SCHEMA_VERSION


def test_sigkill_in_the_middle_of_writes_never_stops_the_next_start(tmp_path: Path) -> None:
    """Thousands of targets and a write every 10 ms: kills land while the file is being written."""
    port = closed_port()
    lines = ["targets:", *(f"  - {{name: t{i}, host: 127.0.0.1, port: {port}}}" for i in range(1500))]
    config = _config(tmp_path / "config.yml", lines, interval="5s")
    state = tmp_path / "state.json"
    temporary = tmp_path / ".state.json.tmp"
    arguments = ["--storage.path", str(state), "--storage.write-interval", "10ms"]
    rounds = kills_mid_write = 0
    loaded = set_aside = 0
    while rounds < 30 and (kills_mid_write < 3 or rounds < 6):
        exporter = ExporterProcess(config, tmp_path / f"run-{rounds}.log", extra_args=arguments)
        log = exporter.log_text()
        if rounds:
            if "state file loaded" in log:
                loaded += 1
                assert _restored(log, "probe_results")["restored"] > 0, log
            else:
                set_aside += 1
                assert "set aside" in log, log
        # Until a write has happened, nothing is at stake.
        exporter.wait_for_state_file()
        threading.Event().wait(random.uniform(0.05, 0.6))  # noqa: S311 (a random moment, not a secret)
        exporter.process.kill()
        exporter.process.wait()
        exporter.stop()
        kills_mid_write += temporary.exists()
        rounds += 1
    assert kills_mid_write >= 1, f"no kill out of {rounds} landed in a write"
    # The rename is atomic: a kill leaves the previous document, which loads.
    assert (loaded, set_aside) == (rounds - 1, 0)


def test_an_empty_storage_path_writes_nothing(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "config.yml", ["targets:", f"  - {{name: closed, host: 127.0.0.1, port: {closed_port()}}}"]
    )
    environment = os.environ.pop("STATE_DIRECTORY", None)
    try:
        with ExporterProcess(
            config, tmp_path / "exporter.log", extra_args=["--storage.path", ""], cwd=tmp_path, state_beside_log=False
        ) as exporter:
            exporter.wait_for_probes(["closed"])
    finally:
        if environment is not None:
            os.environ["STATE_DIRECTORY"] = environment
    assert sorted(path.name for path in tmp_path.iterdir()) == ["config.yml", "exporter.log"]


def test_the_default_state_file_is_in_data_or_under_systemds_state_directory(tmp_path: Path) -> None:
    config = _config(
        tmp_path / "config.yml", ["targets:", f"  - {{name: closed, host: 127.0.0.1, port: {closed_port()}}}"]
    )
    arguments = ["--storage.write-interval", "100ms"]
    previous = os.environ.pop("STATE_DIRECTORY", None)
    try:
        with ExporterProcess(
            config, tmp_path / "a.log", extra_args=arguments, cwd=tmp_path, state_beside_log=False
        ) as exporter:
            # A result to keep: without one there is nothing to write.
            exporter.wait_for_probes(["closed"])
        # Stopped with SIGTERM: the shutdown write at the latest.
        assert json.loads((tmp_path / "data" / "state.json").read_text())["format"] == FORMAT
        os.environ["STATE_DIRECTORY"] = str(tmp_path / "systemd")
        (tmp_path / "systemd").mkdir()
        with ExporterProcess(
            config, tmp_path / "b.log", extra_args=arguments, cwd=tmp_path, state_beside_log=False
        ) as exporter:
            exporter.wait_for_probes(["closed"])
        assert json.loads((tmp_path / "systemd" / "state.json").read_text())["format"] == FORMAT
    finally:
        os.environ.pop("STATE_DIRECTORY", None)
        if previous is not None:
            os.environ["STATE_DIRECTORY"] = previous


def _echoing_auth_server() -> Script:
    """Answers AUTH PLAIN with a 535 that quotes what it was sent: the credentials, in base64."""

    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, "220 mail.test ESMTP")
        await read_command(reader)
        await send(writer, "250-mail.test", "250 AUTH PLAIN LOGIN")
        command = (await read_command(reader)).decode().strip()
        await send(writer, f"535 5.7.8 Authentication failed for [{command}]")
        await read_command(reader)
        await send(writer, "221 2.0.0 Bye")

    return script


def test_no_password_reaches_the_state_file_even_when_the_server_echoes_it(
    tmp_path: Path, servers: ScenarioServers
) -> None:
    port = servers.scripted(_echoing_auth_server())
    auth = "{username: " + USER + ", password_env: " + PASSWORD_ENV + ", mechanism: PLAIN}"
    lines = ["targets:", f"  - name: echo\n    host: 127.0.0.1\n    port: {port}\n    tls: none"]
    lines += [f"    auth: {auth}", "    allow_plaintext_auth: true"]
    config = _config(tmp_path / "config.yml", lines)
    os.environ[PASSWORD_ENV] = PASSWORD
    try:
        exporter = ExporterProcess(config, tmp_path / "exporter.log")
    finally:
        del os.environ[PASSWORD_ENV]
    with exporter:
        exporter.wait_for(lambda s: s.value("smtp_auth_success", target="echo") == 0)
        text = exporter.wait_for_state_file(lambda text: "auth_failed" in text)
    for secret in SECRET_FORMS:
        assert secret not in text, "the state file contains the password (or a base64 form of it)"
    [entry] = json.loads(text)["sections"]["probe_results"].values()
    assert entry["value"]["auth"]["reply"] == "535 (server text not kept across restarts)"


@pytest.mark.parametrize("entries", [0, 1, 255, 256, 257, 600])
def test_a_section_written_in_chunks_reads_back_whole_and_follows_changes(tmp_path: Path, entries: int) -> None:
    # The writer joins a few hundred entries at a time and keeps each entry's
    # text compressed between writes: every count around a chunk's size must
    # give one valid document, and a second write must carry the changed
    # values, not the remembered text of the old ones.
    section = Section("probe_results", ProbeResult)
    path = tmp_path / "state.json"
    values = {f"t{index}": _failed_result(started_at=float(index)) for index in range(entries)}
    config = probe_spec("127.0.0.1", 25, ProbeOptions(TlsMode.STARTTLS, 5.0, "probe.test"))

    async def write_twice() -> None:
        store = StateStore(path, write_interval=3600)
        store.register(section, lambda: {key: Current(config, value) for key, value in values.items()})
        store.changed()
        await store.close()
        first = json.loads(path.read_text())["sections"]["probe_results"]
        assert sorted(first) == sorted(values)
        for key in list(values)[::2]:
            values[key] = _failed_result(started_at=values[key].started_at + 1000)
        store.changed()
        await store.close()

    asyncio.run(write_twice())
    restarted = StateStore(path)
    restarted.load()
    restored = restarted.restored(section, dict.fromkeys(values, config))
    assert {key: value.started_at for key, value in restored.items()} == {
        key: value.started_at for key, value in values.items()
    }


def _failed_result(*, started_at: float) -> ProbeResult:
    failure = Failure(Phase.CONNECT, Reason.CONNECTION_REFUSED, "refused")
    return ProbeResult(started_at, started_at + 1, 1.0, ((Phase.CONNECT, 1.0),), (failure,))
