"""``smtp-tls-exporter demo``: every posture shows what it promises, every metric is there, and it stops cleanly."""

from __future__ import annotations

import base64
import signal
import subprocess
import sys
from pathlib import Path

from exporter.demo.main import DEMO_USER, POSTURES
from exporter.metrics.families import TARGET_FAMILIES
from tests.support.demo_process import POSTURE_NAMES, DemoProcess
from tests.support.exporter_process import Scrape


def _reasons(scrape: Scrape, target: str) -> set[str]:
    return {labels["reason"] for labels, _ in scrape.find("smtp_probe_error_info", target=target)}


def test_postures_show_what_the_demo_says_they_show(demo: DemoProcess) -> None:
    scrape = demo.scrape()
    assert scrape.value("smtp_probe_success", target="healthy") == 1
    assert scrape.value("smtp_auth_success", target="healthy") == 1
    assert scrape.value("smtp_send_success", target="healthy") == 1
    assert scrape.value("smtp_cert_trusted", target="healthy") == 1
    assert scrape.value("smtp_starttls_offered", target="healthy") == 1
    assert scrape.value("smtp_tls_client_certificate_requested", target="healthy") == 1
    assert scrape.value("smtp_tls_client_certificate_accepted", target="healthy") == 1
    assert scrape.value("smtp_tls_client_cert_not_after_timestamp_seconds", target="healthy") is not None
    assert scrape.value("smtp_probe_success", target="implicit-tls") == 1
    assert scrape.find("smtp_target_info", target="implicit-tls")[0][0]["tls"] == "implicit"
    soon = scrape.value("smtp_cert_expiry_days", target="expires-in-14-days")
    assert soon is not None
    assert 13.9 < soon <= 14
    critical = scrape.value("smtp_cert_expiry_days", target="expires-in-3-days")
    assert critical is not None
    assert 2.9 < critical <= 3
    expired = scrape.value("smtp_cert_expiry_days", target="cert-expired")
    assert expired is not None
    assert -2.1 < expired <= -2
    assert _reasons(scrape, "cert-expired") == {"cert_expired"}
    assert scrape.value("smtp_cert_trusted", target="self-signed") == 0
    assert _reasons(scrape, "self-signed") == {"cert_untrusted"}
    assert scrape.value("smtp_cert_hostname_match", target="wrong-hostname") == 0
    assert scrape.value("smtp_cert_trusted", target="wrong-hostname") == 1
    assert _reasons(scrape, "wrong-hostname") == {"hostname_mismatch"}
    assert scrape.value("smtp_starttls_offered", target="starttls-missing") == 0
    assert _reasons(scrape, "starttls-missing") == {"starttls_not_offered"}
    assert scrape.value("smtp_tls_version", target="tls-1.1-only") == 1.1
    assert scrape.value("smtp_probe_success", target="tls-1.1-only") == 1
    assert scrape.value("smtp_auth_success", target="wrong-password") == 0
    assert _reasons(scrape, "wrong-password") == {"auth_failed"}


def test_the_demo_populates_every_metric_family(demo: DemoProcess) -> None:
    names = {name for name, _, _ in demo.scrape().samples}
    # DANE needs a DNSSEC-signed zone and a validating resolver, which the demo
    # does not run (tests/test_dane.py populates those families).
    dane = {family.name for family in TARGET_FAMILIES if family.name.startswith("smtp_dane_")}
    assert {family.name for family in TARGET_FAMILIES} - dane - names == set()
    assert {"smtp_exporter_build_info", "smtp_exporter_scheduler_lag_seconds_bucket"} <= names


def test_every_target_reports_its_interval(demo: DemoProcess) -> None:
    scrape = demo.scrape()
    assert {labels["target"]: value for labels, value in scrape.find("smtp_target_interval_seconds")} == dict.fromkeys(
        POSTURE_NAMES, 15
    )


def test_demo_passwords_never_leak(demo: DemoProcess) -> None:
    directory = demo.config_file.parent
    passwords = [(directory / name).read_text() for name in ("right-password", "wrong-password")]
    assert all(len(password) >= 16 for password in passwords)
    forms = [
        form
        for password in passwords
        for form in (
            password,
            base64.b64encode(password.encode()).decode(),
            base64.b64encode(f"\0{DEMO_USER}\0{password}".encode()).decode(),
        )
    ]
    places = {"metrics": demo.scrape().text, "landing page": demo.get("/")[2], "log": demo.log_text()}
    for place, text in places.items():
        for form in forms:
            assert form not in text, f"a demo password appears in the {place}"
    # Written for the owner only, like the keys beside them.
    assert {(directory / name).stat().st_mode & 0o777 for name in ("right-password", "wrong-password")} == {0o600}


def test_the_introduction_names_every_target_and_where_to_look(demo: DemoProcess) -> None:
    text = demo.log_text()
    assert f"  Metrics:      {demo.base_url}/metrics" in text
    for posture in POSTURES:
        assert f"  {posture.name} " in text
        assert posture.shows in text


def test_demo_stops_on_ctrl_c_and_removes_its_files(tmp_path: Path) -> None:
    process = DemoProcess(tmp_path / "demo.log")
    try:
        process.wait_for_probes(POSTURE_NAMES)
        directory = process.config_file.parent
        assert directory.is_dir()
        process.send_signal(signal.SIGINT)
        returncode = process.process.wait(timeout=20)
    finally:
        process.stop()
    assert returncode == 0
    assert not directory.exists()
    assert "shutting down" in process.log_text()
    assert "Traceback" not in process.log_text()


def test_help_lists_the_demo() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "exporter", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0
    assert "smtp-tls-exporter demo" in completed.stdout


def test_demo_reports_a_busy_port_in_one_line(demo: DemoProcess) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "exporter", "demo", "--web.listen-address", demo.address],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 1
    assert f"cannot listen on {demo.address}" in completed.stderr
    assert "Traceback" not in completed.stderr
