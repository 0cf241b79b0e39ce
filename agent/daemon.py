"""The composition root: builds every part from the config, owns all state,
runs until SIGTERM, reloads on SIGHUP.

Start order: logging, state directory, audit trail and TLS files, the
operations journal (recovered, then reconciled with the audit trail), store
and scheduler (collection begins), gRPC and /metrics listeners, health
SERVING, ``READY=1``, watchdog.  A failure on the way stops what had started
and ends in one ``agent.start_failed`` line (``agent/startup.py``).  Stop
order is the reverse, bounded so the process exits well within 5 s.
"""
from __future__ import annotations

import errno
import os
import signal
import threading
import time
from dataclasses import replace

from typing import Sequence

from agent import __version__, core
from agent.api.auth import AuthInterceptor
from agent.api.server import INVENTORY, TELEMETRY, build_server
from agent.api.streams import StreamGate
from agent.api.telemetry_service import TelemetryService
from agent.backends.hostfs import HostFS
from agent.collectors import COLLECTORS
from agent.collectors.agent import AgentCollector
from agent.config import Config, ConfigError, split_hostport
from agent.exposition import MetricsServer
from agent.feature import Feature, FeatureContext, FeatureInstance, ServiceContext
from agent.features import FEATURES, declared_collectors, load_agent_config
from agent.gen.hostagent.v1 import inventory_pb2, operations_pb2
from agent.logs import get_logger, setup_logging
from agent.operations.journal import Journal
from agent.operations.manager import OperationKind, OperationManager
from agent.security.access import Access
from agent.security.policy import RolesFileError
from agent.security.tls import TlsError, load_material
from agent.features.lazy import LazyInventory, LazyServicer
from agent.startup import (EXIT_CONFIG, EXIT_RETRY, StartError, listen_failed, lock_state_dir,
                           make_state_dir, socket_failed, start_operations)
from agent.sdnotify import Notifier
from agent.telemetry.collector import Collector, CollectorContext, CollectorInfo
from agent.telemetry.events import EventBus, Severity
from agent.telemetry.query import DemandQuery
from agent.telemetry.scheduler import CollectorSpec, Scheduler
from agent.telemetry.store import SeriesStore

log = get_logger(__name__)
STREAM_HEADROOM = 4  # worker threads kept for unary calls
OPERATIONS = operations_pb2.DESCRIPTOR.services_by_name["Operations"]
SCRAPE_AGE = 0.25  # what Scheduler.refresh runs for a scrape (docs/architecture.md)
CATCH_UP = 1.0  # seconds the first API read after an idle spell waits for fresh values
# The first API read after start waits for the collectors' start-up runs as
# long as a scrape would: thirty first runs at once (the link watchers dump
# every link then) take more than CATCH_UP on a loaded host, and a read right
# after SERVING found no family yet ("unknown metric", INVALID_ARGUMENT).
FIRST_CATCH_UP = 5.0
# A collector's first run may take longer than its timeout: it opens netlink
# sockets and watchers and dumps every link (1.5 s at 4096 interfaces, against
# netdev's 1 s timeout); a timeout there only logged a collector.failed per start.
START_ALLOWANCE = 10.0
_HOST_COLLECTORS = frozenset(c.name for c in COLLECTORS)
Plugin = Feature  # serve(plugins=...): a feature this build does not list (the tests' Mutator)


class Agent:
    def __init__(self, cfg: Config, config_path: str | None = None,
                 overrides: dict | None = None, hostfs: HostFS | None = None,
                 plugins: Sequence[Feature] = ()) -> None:
        self.cfg = cfg
        self.features = FEATURES + tuple(plugins)
        # Collector declarations by name; at start, a feature's own replace its declared ones.
        self._infos: dict[str, CollectorInfo] = {
            c.name: c for c in declared_collectors(self.features)}
        self._instances: list[tuple[Feature, FeatureInstance]] = []  # built at start
        self.config_path = config_path
        self.overrides = dict(overrides or {})
        self.hostfs = hostfs or HostFS("/")
        self.notifier = Notifier()
        self.events = EventBus()
        self.store = SeriesStore(cfg.telemetry.retention)
        # Open streams (metrics or events) want every collector on its schedule.
        self.scheduler = Scheduler(self.store, self.events, cfg.telemetry.max_backoff,
                                   demand=lambda: self.streams.active > 0)
        self.streams = StreamGate(max(1, cfg.server.max_workers - STREAM_HEADROOM))
        self.query = DemandQuery(self.store, self._api_read, lambda collectors: self.scheduler.want_history(
            collectors, self.cfg.telemetry.retention))
        self._collectors: dict[str, Collector] = {
            "agent": AgentCollector(self.scheduler, self.store, self.events,
                                    lambda: self.streams.active,
                                    lambda: self.access.audit if self.access else None,
                                    trim=_trim_heap)}
        self._options: dict[str, object] = {}  # options each cached collector was built with
        self._first_read = True  # no API read has caught up yet (FIRST_CATCH_UP)
        self._first_read_lock = threading.Lock()  # the others wait for the one catching up
        self._retiring: list[tuple[str, Collector]] = []
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.grpc = None
        self.metrics: MetricsServer | None = None
        self.access: Access | None = None
        self.operations: OperationManager | None = None
        self.journal: Journal | None = None
        self._start_events: list[tuple] = []  # published once the agent has started
        self._state_lock: int | None = None  # flock on <state_dir>/agent.lock

    # -- collectors ------------------------------------------------------
    def _specs(self, cfg: Config) -> list[CollectorSpec]:
        """Collector specs for ``cfg``; collectors it disables or re-creates
        are queued in ``_retiring`` (closed by ``_apply`` once their runners
        are retired, never under a run in flight)."""
        tel = cfg.telemetry
        self.store.configure("agent", tel.interval)
        specs = [CollectorSpec("agent", self._collectors["agent"], tel.interval, tel.timeout,
                               on_scrape=True, background=False, first_timeout=START_ALLOWANCE,
                               inline=True)]
        for name, ccfg in sorted(cfg.collectors.items()):
            if not ccfg.enabled:
                self._retire_collector(name)
                continue
            if name in self._collectors and self._options.get(name) != ccfg.options:
                self._retire_collector(name)  # new options (e.g. namespaces): a fresh instance
            info = self._infos[name]
            collector = self._collectors.get(name)
            if collector is None:
                ctx = CollectorContext(hostfs=self.hostfs, options=ccfg.options,
                                       served_families=lambda n=name: self._families_but(n),
                                       publish=self._publisher)
                collector = self._collectors[name] = info.factory(ctx)
                self._options[name] = ccfg.options
            ccfg = info.effective(ccfg, cfg)  # the declared interval, timeout and retention
            timing = ccfg.resolve(tel)
            self.store.configure(name, timing.interval, own_retention=ccfg.retention)
            # The host's collectors run on their schedule only while someone
            # wants history; the features' (BMC, GPU, flows) always do: they
            # watch hardware and publish events.
            specs.append(CollectorSpec(name, collector, timing.interval, timing.timeout,
                                       on_scrape=info.on_scrape, inline=info.inline,
                                       background=name not in _HOST_COLLECTORS,
                                       first_timeout=START_ALLOWANCE))
        return specs

    def _api_read(self) -> None:
        """A GetMetrics or a stream: keep history for a retention's length;
        after an idle spell, bring values to the present first."""
        # Every read until the start-up runs are in waits for them, even
        # while a stream is open (want() then says "not idle": a StreamMetrics
        # is a stream before it checks its names) and even beside another
        # first read (two streams opened at once: the second found no family).
        if self._first_read:
            with self._first_read_lock:
                if self._first_read:
                    self.scheduler.want(self.cfg.telemetry.retention)
                    self.scheduler.refresh(SCRAPE_AGE, FIRST_CATCH_UP)
                    self._first_read = False
                    return
        if self.scheduler.want(self.cfg.telemetry.retention):
            self.scheduler.refresh(SCRAPE_AGE, CATCH_UP)

    def _families_but(self, collector: str) -> set[str]:
        """Families the store holds from collectors other than ``collector``."""
        return self.store.family_names_except(collector)

    def _retire_collector(self, name: str) -> None:
        collector = self._collectors.pop(name, None)
        self._options.pop(name, None)
        if collector is not None:
            self._retiring.append((name, collector))

    def _apply(self, cfg: Config) -> list[CollectorSpec]:
        """Install ``cfg``'s collectors, then release the retired ones
        (netlink sockets, watcher threads)."""
        specs = self._specs(cfg)
        self.scheduler.set_collectors(specs)
        self._close_retired()
        return specs

    def _close_retired(self) -> None:
        retiring, self._retiring = self._retiring, []
        for name, collector in retiring:
            close = getattr(collector, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - released anyway
                    log.exception("collector.close_failed", collector=name)

    def _publisher(self, kind: str, severity: Severity, source: str, message: str, **labels):
        return self.events.publish(kind, severity, source, message, **labels)

    # -- lifecycle -------------------------------------------------------
    def start(self) -> None:
        cfg = self.cfg
        log.info("agent.starting", version=__version__, pid=os.getpid(),
                 kernels=core.IMPLEMENTATION, **({"kernels_note": core.FALLBACK_REASON} if core.FALLBACK_REASON else {}))
        make_state_dir(cfg.state_dir)
        self._state_lock = lock_state_dir(cfg.state_dir)
        self.access = Access(cfg)  # the audit trail is needed by the journal's recovery
        for feature in self.features:
            context = FeatureContext(cfg, cfg.state_dir, self._publisher)
            instance = feature.build(context)
            self._instances.append((feature, instance))
            self._infos.update((c.name, c) for c in instance.collectors())
        self._start_operations()
        specs = self._apply(cfg)
        self._start_grpc()
        for address in self.grpc.addresses:
            log.info("grpc.listening", address=address)
        if cfg.server.metrics_listen:
            host, port = split_hostport(cfg.server.metrics_listen)
            try:
                self.metrics = MetricsServer(host, port, self.store, self.scheduler.refresh)
            except OSError as exc:
                raise listen_failed("server.metrics_listen", cfg.server.metrics_listen, exc) from None
            shown = f"[{host}]" if ":" in host else host
            log.info("metrics.listening", url=f"http://{shown}:{self.metrics.port}/metrics")
        self.grpc.set_serving(True)
        self.events.publish("agent.started", Severity.INFO, "agent", f"hostagent {__version__} started",
                            version=__version__, kernels=core.IMPLEMENTATION)
        # After agent.started: since_sequence=0 replays nothing, so event 1 is never replayed.
        for kind, severity, message, labels in self._start_events:
            self.events.publish(kind, severity, "agent", message, **labels)
        self.notifier.ready(f"serving on {', '.join(self.grpc.addresses) or 'no gRPC listener'}")
        log.info("agent.ready", collectors=",".join(s.name for s in specs))
        # Collection starts once the API answers: the first runs of thirty
        # collectors (threads fighting for the GIL) no longer delay SERVING.
        # A scrape before this runs its collectors itself (refresh).
        # Collector threads start from here on: cap glibc's arenas before
        # they make theirs (agent/backends/malloc.py says why and how much).
        from agent.backends import malloc  # ctypes: after SERVING, not before

        malloc.limit_arenas(2)
        self.scheduler.start()
        self._start_watchdog()

    def _start_operations(self) -> None:
        kinds: dict[str, OperationKind] = {}
        for _, instance in self._instances:
            kinds.update(instance.kinds())
        ops = self.cfg.operations
        self.journal, self.operations, events = start_operations(
            self.cfg.state_dir, kinds, ops.workers, ops.retention, self.access.audit, self._stop)
        self._start_events.extend(events)

    def _add_inventory(self, inventory: inventory_pb2.Inventory) -> None:
        for _, instance in self._instances:
            instance.add_inventory(inventory)

    def _operations_service(self):
        from agent.api.operations_service import OperationsService  # at its first call
        return OperationsService(self.operations)

    def _start_grpc(self) -> None:
        cfg = self.cfg
        services = [(TelemetryService(self.query, self.events, self.streams), TELEMETRY),
                    (LazyInventory(self.hostfs, self._add_inventory), INVENTORY),
                    (LazyServicer(self._operations_service), OPERATIONS)]
        context = ServiceContext(self.operations, self.access.identify,
                                 lambda who: self.access.policy.role_of(who))
        for _, instance in self._instances:
            services += instance.services(context)
        self.access.use_contract(d.file for _, d in services)
        auth = AuthInterceptor(lambda: self.access.policy, self.access.identify, self.access.audit,
                               cfg.server.max_streams_per_identity,
                               streams_total=max(1, cfg.server.max_workers - STREAM_HEADROOM))
        self.grpc = build_server(services, cfg.server.max_workers, (auth,),
                                 cfg.server.max_concurrent_rpcs)
        try:
            self.grpc.addresses.extend(self.access.bind(self.grpc.server))
        except (RuntimeError, OSError) as exc:  # gRPC says only "Failed to bind"
            raise listen_failed("server.grpc_listen", cfg.server.grpc_listen or "127.0.0.1:0",
                                exc) from None
        self.grpc.server.start()
        try:
            self.access.start()
        except OSError as exc:
            raise socket_failed(cfg.server.grpc_socket, exc) from None

    def _start_watchdog(self) -> None:
        period = self.notifier.watchdog_interval()
        if not period:
            return

        def ping() -> None:
            withheld = False
            while not self._stop.wait(period):
                # Ping only while the collection loop wakes when it means to:
                # a stuck scheduler lets systemd's watchdog restart us.
                if self.scheduler.lag() < max(2 * period, 2.0):
                    self.notifier.watchdog()
                    withheld = False
                elif not withheld:
                    withheld = True
                    log.error("watchdog.withheld", scheduler_lag=round(self.scheduler.lag(), 1))

        threading.Thread(target=ping, name="watchdog", daemon=True).start()
        log.info("watchdog.enabled", period=period)

    def run(self) -> int:
        """Serve until SIGTERM/SIGINT; SIGHUP reloads.  Returns the exit code."""
        # The main thread sleeps in a read of the signal wakeup pipe, not in a
        # polling wait: a signal delivered to any thread writes a byte there,
        # and the handlers then run here.
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        os.set_blocking(wake_r, True)
        old_fd = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, lambda *_: self._stop.set())
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())
        signal.signal(signal.SIGHUP, lambda *_: self._reload.set())
        try:
            try:
                self.start()
            except BaseException:
                self.stop()  # what had started: listeners, the socket file, threads
                raise
            self._serve_signals(wake_r)
        finally:
            signal.set_wakeup_fd(old_fd)
            os.close(wake_r)
            os.close(wake_w)
        self.stop()
        return 0

    def _serve_signals(self, wake_r: int) -> None:
        while not self._stop.is_set():
            os.read(wake_r, 64)  # returns once a signal arrived (handlers have run)
            if self._reload.is_set():
                self._reload.clear()
                try:
                    self.reload()
                except Exception:  # noqa: BLE001 - a reload never takes the agent down
                    log.exception("config.reload_failed", action="keeping the running config")
                    self.notifier.ready("reload failed; running with the previous config")

    def reload(self) -> None:
        self.notifier.reloading()
        try:
            cfg = load_agent_config(self.config_path, self.overrides, self.features)
            if cfg.tls.enabled:  # what a start checks: a reload accepts no less
                load_material(cfg.tls.cert_file, cfg.tls.key_file, cfg.tls.client_ca_file)
        except (ConfigError, TlsError) as exc:
            where = {"file": exc.path, "error": exc.reason} if isinstance(exc, TlsError) else {
                "error": str(exc)}
            log.error("config.reload_failed", **where, action="keeping the running config")
            self.notifier.ready("reload failed; running with the previous config")
            return
        if cfg.server != self.cfg.server or cfg.state_dir != self.cfg.state_dir:
            log.warning("config.restart_required", reason="server and state_dir changes apply at the next start")
        for feature in self.features:
            if feature.section is not None and (
                    cfg.section(feature.section) != self.cfg.section(feature.section)):
                log.warning("config.restart_required",
                            reason=f"[{feature.section.name}] changes apply at the next start")
        if cfg.tls != self.cfg.tls:
            # gRPC cannot swap a port's credentials; the files already named
            # are re-read at every handshake (rotation needs no reload).
            log.warning("config.restart_required", reason="[tls] file changes apply at the next "
                        "start; until then the files named before are served")
        # Keep what runs: a later SIGHUP still sees these changes as pending.
        cfg = replace(cfg, server=self.cfg.server, state_dir=self.cfg.state_dir,
                      sections=self.cfg.sections, tls=self.cfg.tls)
        setup_logging(cfg.log.level, cfg.log.format)
        self.access.reload(cfg)
        self.store.retention = cfg.telemetry.retention
        self.scheduler.max_backoff = cfg.telemetry.max_backoff
        self._apply(cfg)  # also resizes each block
        self.cfg = cfg
        self.events.publish("agent.reloaded", Severity.INFO, "agent", "configuration reloaded")
        log.info("config.reloaded", path=self.config_path)
        self.notifier.ready("serving (config reloaded)")

    def stop(self) -> None:
        t0 = time.monotonic()
        log.info("agent.stopping")
        self.notifier.stopping()
        self._stop.set()
        if self.grpc is not None:
            self.grpc.set_serving(False)
            self.streams.close_all()  # streams end with UNAVAILABLE
            self.events.close_all()
            self.grpc.server.stop(grace=1.5).wait(2.0)
        if self.access is not None:
            self.access.close()
        if self.operations is not None:
            self.operations.close(timeout=1.0)
            self.journal.close()
        if self.metrics is not None:
            self.metrics.close()
        self.scheduler.stop(timeout=0.5)
        for name in list(self._collectors):
            self._retire_collector(name)
        self._close_retired()
        while self._instances:  # after their collectors and services
            feature, instance = self._instances.pop()
            try:
                instance.close()
            except Exception:  # noqa: BLE001 - the others are closed anyway
                log.exception("feature.close_failed", feature=feature.name)
        if self._state_lock is not None:
            os.close(self._state_lock)  # last: nothing writes the state directory now
            self._state_lock = None
        log.info("agent.stopped", seconds=round(time.monotonic() - t0, 3))


def _trim_heap() -> None:
    from agent.backends import malloc  # loaded by limit_arenas after SERVING

    malloc.trim()


def serve(config_path: str | None, overrides: dict, plugins: Sequence[Feature] = ()) -> int:
    """Entry point of ``hostagent serve``: validate config, then run."""
    try:
        cfg = load_agent_config(config_path, overrides, FEATURES + tuple(plugins))
    except ConfigError as exc:
        setup_logging("info", "logfmt")
        log.error("config.invalid", error=str(exc))
        return 2
    setup_logging(cfg.log.level, cfg.log.format)
    try:
        return Agent(cfg, config_path, overrides, plugins=plugins).run()
    except StartError as exc:
        log.error("agent.start_failed", **exc.where, error=exc.error, action=exc.action)
        return exc.code
    except TlsError as exc:
        log.error("config.invalid", file=exc.path, error=str(exc))
        return 2
    except RolesFileError as exc:
        log.error("config.invalid", error=str(exc))
        return 2
    except OSError as exc:  # not foreseen above: still one line naming the file
        # Refused permission (a capability the unit does not grant, such as
        # sampling's CAP_NET_RAW, or a file's mode) does not clear by itself:
        # exit 2, which the unit does not restart.
        permanent = exc.errno in (errno.EPERM, errno.EACCES, errno.EAFNOSUPPORT)
        log.error("agent.start_failed", path=exc.filename or "", error=exc.strerror or str(exc),
                  action="fix what the error names" + ("" if permanent else "; systemd retries"))
        return EXIT_CONFIG if permanent else EXIT_RETRY
