"""The long-running exporter: config -> scheduler -> probes -> store -> HTTP."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from aiohttp import web

from exporter import __version__
from exporter.config.loader import ConfigError, load_config
from exporter.config.model import Config, DomainEntry, HostAddressesEntry, ScheduledTarget
from exporter.dns.resolver import DnsResolver, DnsSettings, resolver_or_none
from exporter.metrics.render import ExporterStatus, HistogramSnapshot, MetricsRenderer
from exporter.mta_sts.enforcement import with_sts_failures
from exporter.mta_sts.result import MtaStsResult
from exporter.probe.result import ProbeResult, unresolved_result
from exporter.probe.run import run_probe
from exporter.runtime.domains import DnsWatcher, DomainLookup
from exporter.runtime.kept import DNS_LOOKUPS, MTA_STS_CHECKS, PROBE_RESULTS, TEST_MESSAGES, TLS_SCANS, EntryLookup
from exporter.runtime.mta_sts import MtaStsWatcher
from exporter.runtime.scheduler import LagHistogram, Scheduler, Shard
from exporter.runtime.store import ResultStore
from exporter.scan.result import ScanResult
from exporter.scan.runner import ScanScheduler
from exporter.state.store import Current, StateStore
from exporter.tls.context import TlsClients
from exporter.web.access import WebAccess
from exporter.web.app import create_app
from exporter.web.guard import IDLE_TIMEOUT_SECONDS
from exporter.web.landing import landing_page
from exporter.web.listener import bound_address
from exporter.web.probe_endpoint import ProbeResponse, probe_on_demand

log = logging.getLogger(__name__)


def load_runtime(path: Path) -> tuple[Config, TlsClients]:
    """Load the config and what is built from it once: a TLS client per CA file.

    Raises ConfigError; the config loader has already checked that OpenSSL
    can read every CA file, with the line that names it.
    """
    config = load_config(path)
    for warning in config.warnings:
        log.warning("%s", warning)
    return config, TlsClients(config.tls_client_keys())


class Daemon:
    def __init__(
        self,
        config_path: Path,
        *,
        max_concurrency: int,
        shard: Shard | None = None,
        state: StateStore | None = None,
    ) -> None:
        self.config_path = config_path
        self._shard = shard
        self.store = ResultStore()
        # The state file (--storage.path); without one, nothing is kept across restarts.
        self._state = state if state is not None else StateStore(None)
        self._renderer = MetricsRenderer()
        self._max_concurrency = max_concurrency
        self._scheduler: Scheduler | None = None
        self._scan_scheduler: ScanScheduler | None = None
        self._watcher: DnsWatcher | None = None
        self._watched_resolver: DnsResolver | None = None
        self._mta_sts: MtaStsWatcher | None = None
        self._config: Config | None = None
        self._tls_clients = TlsClients()
        # The one resolver client of the loaded ``dns:`` block: domain lookups and TLSA.
        self._dns: tuple[DnsSettings, DnsResolver | None] | None = None
        self._last_reload_successful = False
        self._last_reload_success_timestamp = 0.0

    @property
    def ready(self) -> bool:
        return self._config is not None

    def load(self) -> None:
        """First load: raises ConfigError, because there is nothing to fall back on."""
        self._config, self._tls_clients = load_runtime(self.config_path)
        self._last_reload_successful = True
        self._last_reload_success_timestamp = time.time()
        self.store.set_targets(self._scheduled_targets())
        self._renderer.set_targets(self.store.records())
        self._state.load()

    def start(self) -> None:
        if self._config is None:
            raise RuntimeError("Daemon.start() needs a loaded config: call load() first")
        self._scheduler = Scheduler(self._probe, self._record, max_concurrency=self._max_concurrency)
        # DNS first: kept lookups give the pairs whose kept results are restored next.
        self._follow_dns()
        targets = self._scheduled_targets()
        self.store.set_targets(targets)
        self._restore_results(targets)
        self._renderer.set_targets(self.store.records())
        self._scheduler.set_targets(targets)
        # Scans wait for slots of their own: they never take one a probe needs. Each
        # target's first scan is due an interval after its kept one, not at start.
        self._scan_scheduler = ScanScheduler(self._record_scan)
        self._scan_scheduler.set_targets(targets, last_scans=self.store.scan_times())
        self._keep_state()
        shard = f"{self._shard.index}/{self._shard.count}" if self._shard else "all"
        log.info(
            "probing targets on schedule",
            extra={"targets": len(self.store), "domains": len(self._domains()), "shard": shard},
        )

    async def stop(self) -> None:
        # Written while the checks still hold their results: closing them forgets
        # the entries they followed, and cancels probes rather than finishing them.
        await self._state.close()
        if self._scan_scheduler is not None:
            await self._scan_scheduler.close()
        if self._mta_sts is not None:
            await self._mta_sts.close()
        if self._watcher is not None:
            await self._watcher.close()
        if self._scheduler is not None:
            await self._scheduler.close()

    def _restore_results(self, targets: tuple[ScheduledTarget, ...]) -> None:
        """Kept probe results and test messages, for targets whose probe is configured as before."""
        specs = {target.name: target.spec for target in targets}
        self.store.restore(
            self._state.restored(PROBE_RESULTS, specs),
            self._state.restored(TEST_MESSAGES, specs),
            self._state.restored(TLS_SCANS, specs),
        )

    def _keep_state(self) -> None:
        """Register what the state file holds; each snapshot only takes references, on the loop."""
        records = self.store.records
        self._state.register(
            PROBE_RESULTS,
            lambda: {r.config.name: Current(r.config.spec, r.result) for r in records() if r.result is not None},
        )
        self._state.register(
            TEST_MESSAGES,
            lambda: {r.config.name: Current(r.config.spec, r.last_send) for r in records() if r.last_send is not None},
        )
        self._state.register(
            TLS_SCANS, lambda: {r.config.name: Current(r.config.spec, r.scan) for r in records() if r.scan is not None}
        )
        self._state.register(DNS_LOOKUPS, self._kept_lookups)
        self._state.register(MTA_STS_CHECKS, self._kept_mta_sts_checks)
        self._state.start()

    def _kept_mta_sts_checks(self) -> dict[str, Current[MtaStsResult]]:
        kept = self._mta_sts.kept() if self._mta_sts is not None else {}
        return {name: Current(entry, result) for name, (entry, result) in kept.items()}

    def _kept_lookups(self) -> dict[str, Current[EntryLookup]]:
        watcher = self._watcher
        kept = watcher.kept_lookups() if watcher is not None else {}
        return {name: Current(entry, lookup) for name, (entry, lookup) in kept.items()}

    def _follow_dns(self) -> None:
        """Hand the DNS entries of the config to the watcher; pairs follow from its lookups."""
        if self._scheduler is None or self._config is None:
            return  # not started yet: start() follows DNS
        entries = self._dns_entries()
        if not entries and self._watcher is None:
            return  # nothing to look up
        resolver = self._resolver()
        if resolver is None:
            return  # no nameserver anywhere: logged, and the rest of the exporter goes on
        if self._watcher is None:
            restored = self._state.restored(DNS_LOOKUPS, {entry.name: entry for entry in entries})
            self._watcher = DnsWatcher(self._dns_changed, resolver, restored)
            kept_checks = self._state.restored(MTA_STS_CHECKS, {entry.name: entry for entry in self._domains()})
            self._mta_sts = MtaStsWatcher(self._mta_sts_changed, resolver, kept_checks)
        changed = resolver is not self._watched_resolver
        self._watched_resolver = resolver
        self._watcher.set_entries(entries, resolver, resolver_changed=changed)
        if self._mta_sts is not None:
            self._mta_sts.set_entries(self._domains(), resolver, resolver_changed=changed)
        # Changed and removed entries lost their pairs; unchanged ones keep theirs.
        self._dns_changed()

    def _dns_changed(self) -> None:
        """A lookup finished (or the entries changed): adopt the pairs it gives."""
        targets = self._scheduled_targets()
        self.store.set_targets(targets)
        self._renderer.set_targets(self.store.records())
        self._renderer.set_domains(self._domain_states())
        if self._scheduler is not None:
            self._scheduler.set_targets(targets)
        if self._scan_scheduler is not None:
            # Cancels the scans of changed and removed targets (and pairs), mid-scan too.
            self._scan_scheduler.set_targets(targets)
        self._state.changed()

    def _mta_sts_changed(self) -> None:
        """An MTA-STS check finished: the domains' series change, the pairs keep their schedule."""
        self._renderer.set_domains(self._domain_states())
        self._state.changed()

    def _domain_states(self) -> list[DomainLookup]:
        """Each domain's last lookup with its last MTA-STS check, if it has one."""
        lookups = self._watcher.lookups() if self._watcher else []
        if self._mta_sts is None:
            return lookups
        return [lookup.with_mta_sts(self._mta_sts.result(lookup.name)) for lookup in lookups]

    def _domains(self) -> tuple[DomainEntry, ...]:
        domains = self._config.domains if self._config is not None else ()
        return tuple(domain for domain in domains if self._owns(domain.name))

    def _dns_entries(self) -> list[DomainEntry | HostAddressesEntry]:
        hosts = self._config.host_addresses if self._config is not None else ()
        return [*self._domains(), *(entry for entry in hosts if self._owns(entry.name))]

    def _owns(self, name: str) -> bool:
        # Sharded by entry, so one replica looks a domain up and probes all its pairs.
        return self._shard is None or self._shard.owns(name)

    def reload(self) -> str | None:
        try:
            config, tls_clients = load_runtime(self.config_path)
        except ConfigError as exc:
            self._last_reload_successful = False
            log.error("config reload failed; keeping the previous config:\n%s", exc)
            return str(exc)
        self._config, self._tls_clients = config, tls_clients
        self._last_reload_successful = True
        self._last_reload_success_timestamp = time.time()
        self.store.set_targets(self._scheduled_targets())
        self._renderer.set_targets(self.store.records())
        if self._scheduler is not None:
            self._scheduler.set_targets(self._scheduled_targets())
        if self._scan_scheduler is not None:
            # Cancels the scans of changed and removed targets, mid-scan too.
            self._scan_scheduler.set_targets(self._scheduled_targets())
        self._follow_dns()
        # Results of removed or changed targets are gone from the store: the file follows.
        self._state.changed()
        log.info("config reloaded", extra={"targets": len(self.store)})
        return None

    def _scheduled_targets(self) -> tuple[ScheduledTarget, ...]:
        """This replica's share of the configured targets, and the pairs DNS gave its entries."""
        targets = self._config.targets if self._config is not None else ()
        pairs = self._watcher.pairs() if self._watcher is not None else []
        return (*(target for target in targets if self._owns(target.name)), *pairs)

    async def probe_now(self, query: Mapping[str, str], scrape_timeout_header: str | None) -> ProbeResponse:
        if self._config is None:
            return ProbeResponse(503, "the configuration is not loaded yet\n")
        return await probe_on_demand(
            self._config, self._tls_clients, query, scrape_timeout_header, resolver=self._resolver()
        )

    def metrics_chunks(self) -> list[Sequence[str]]:
        scheduler = self._scheduler
        status = ExporterStatus(
            version=__version__,
            targets=len(self.store),
            config_last_reload_successful=self._last_reload_successful,
            config_last_reload_success_timestamp=self._last_reload_success_timestamp,
            scheduler_lag=_snapshot(scheduler.lag if scheduler else LagHistogram()),
            probes_in_flight=scheduler.in_flight if scheduler else 0,
            asyncio_tasks=len(asyncio.all_tasks()),
            probe_slots=self._max_concurrency,
            probes_skipped={reason.value: count for reason, count in scheduler.skipped.items()} if scheduler else {},
            domains=len(self._domains()),
        )
        return self._renderer.render(status, time.time())

    def metrics_text(self) -> str:
        return "".join("".join(chunk) for chunk in self.metrics_chunks())

    def landing_page(self) -> str:
        return landing_page(self.store.records(), version=__version__)

    async def _probe(self, target: ScheduledTarget) -> ProbeResult:
        if target.unresolved is not None:
            return unresolved_result(target.unresolved, time.time())
        result = await run_probe(
            target.spec,
            self._tls_clients.for_spec(target.spec),
            name=target.name,
            send_due=self._send_due(target),
            keep_transcript=False,
            resolver=self._resolver(),
        )
        if target.mx is None or self._mta_sts is None:
            return result
        # A domain's pair is held to the policy senders apply now (the last good one while fetches fail).
        return with_sts_failures(self._mta_sts.known_policy(target.entry), target.mx, result)

    def _resolver(self) -> DnsResolver | None:
        """One resolver client per loaded ``dns:`` block, shared by every probe."""
        settings = self._config.dns if self._config is not None else DnsSettings()
        if self._dns is None or self._dns[0] != settings:
            self._dns = (settings, resolver_or_none(settings))
        return self._dns[1]

    def _send_due(self, target: ScheduledTarget) -> bool:
        send = target.spec.send
        if send is None:
            return False
        last = self.store.last_send(target.name)
        return last is None or time.time() - last.finished_at >= send.interval

    def _record(self, target: ScheduledTarget, result: ProbeResult) -> None:
        previous = self.store.record_result(target, result)
        record = self.store.get(target.name)
        if record is not None and record.result is result:
            self._renderer.refresh(record)
            self._state.changed()
        reasons = sorted({failure.reason.value for failure in result.failures})
        log.debug(
            "probe finished",
            extra={
                "target": target.name,
                "peer": result.peer_address or "",
                "success": result.success,
                "reasons": ",".join(reasons),
            },
        )
        previous_reasons = sorted({failure.reason.value for failure in previous.failures}) if previous else None
        if reasons != previous_reasons:
            detail = "; ".join(f"{failure.reason.value}: {failure.detail}" for failure in result.failures)
            if result.success:
                log.info("target probes successfully", extra={"target": target.name})
            else:
                log.warning("target probe failed", extra={"target": target.name, "detail": detail})

    def _record_scan(self, target: ScheduledTarget, result: ScanResult) -> None:
        record = self.store.record_scan(target, result)
        if record is not None:
            self._renderer.refresh(record)
            self._state.changed()
        fields = {"target": target.name, "success": result.success, "hellos": result.hellos}
        if result.success:
            accepted = ",".join(version.value for version in result.accepted_versions)
            log.debug("scan finished", extra={**fields, "accepted": accepted, "seconds": round(result.duration, 3)})
        else:
            error = result.error.value if result.error else ""
            log.info("scan failed", extra={**fields, "error": error, "detail": result.error_detail})


def _snapshot(lag: LagHistogram) -> HistogramSnapshot:
    return HistogramSnapshot(tuple(lag.cumulative()), lag.total, lag.observations)


async def serve(daemon: Daemon, listener: socket.socket, access: WebAccess | None = None) -> None:
    """Run until SIGTERM or SIGINT; SIGHUP reloads the config.

    ``access`` is the --web.config.file in force (TLS, basic auth); None serves plain HTTP to anyone.
    """
    access = access if access is not None else WebAccess(None)
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    loop.add_signal_handler(signal.SIGINT, stopping.set)
    loop.add_signal_handler(signal.SIGHUP, daemon.reload)
    app = create_app(daemon)
    access.protect(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, keepalive_timeout=IDLE_TIMEOUT_SECONDS)
    await runner.setup()
    await access.serve(runner, listener)
    daemon.start()
    log.info("listening", extra={"address": bound_address(listener), "tls": access.tls})
    try:
        await stopping.wait()
        log.info("shutting down")
    finally:
        await access.close()
        await daemon.stop()
        await runner.cleanup()
