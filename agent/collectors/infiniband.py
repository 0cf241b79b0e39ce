"""InfiniBand (and RoCE) HCA ports from ``/sys/class/infiniband``, as
node_exporter's infiniband collector serves them.

Per device (Documentation/ABI/stable/sysfs-class-infiniband): ``fw_ver``,
``board_id``, ``hca_type`` (``node_infiniband_info``).  Per port,
``ports/<n>/``:

* ``state`` ``4: ACTIVE`` and ``phys_state`` ``5: LinkUp``: the number is
  served (``_state_id``, ``_physical_state_id``);
* ``rate`` ``200 Gb/sec (4X HDR)``: served in bytes per second;
* ``counters/``: the IBTA PortCounters, one decimal number per file.
  ``port_xmit_data`` and ``port_rcv_data`` count 32-bit words (the spec's
  unit is octets divided by 4): served times 4, in bytes.  A counter the HCA
  cannot read says ``N/A (no PMA)``: no series;
* ``counters_ext/`` (kernels before 4.5): the 64-bit counters, served as
  node_exporter's ``legacy_*``;
* ``hw_counters/``: the driver's (mlx5: RoCE congestion control, retries,
  out-of-buffer drops...), those node_exporter names.  ``lifespan`` is in
  milliseconds: served in seconds.

Labels ``device`` (``mlx5_0``) and ``port`` (``1``).  No devices: no data.
"""
from __future__ import annotations

from typing import NamedTuple

from agent.backends.hostfs import HostFS
from agent.telemetry.collector import CollectorContext, CollectorInfo, NoData
from agent.telemetry.model import Batch, FamilyDesc, MetricType

C, G = MetricType.COUNTER, MetricType.GAUGE
CLASS = "sys/class/infiniband"
LABELS = ("device", "port")
WORDS = 4.0  # port_{xmit,rcv}_data count 4-octet words


def _c(suffix: str, help_: str, scale: float = 1.0) -> FamilyDesc:
    return FamilyDesc(f"node_infiniband_{suffix}", C, help_, "bytes" if scale == WORDS else "",
                      LABELS, scale=scale)


# (directory, file) -> counter family
COUNTERS: dict[tuple[str, str], FamilyDesc] = {
    ("counters", "excessive_buffer_overrun_errors"): _c(
        "excessive_buffer_overrun_errors_total", "Number of times that OverrunErrors consecutive flow "
        "control update periods occurred, each having at least one overrun error."),
    ("counters", "link_downed"): _c(
        "link_downed_total", "Number of times the link failed to recover from an error state and went down"),
    ("counters", "link_error_recovery"): _c(
        "link_error_recovery_total", "Number of times the link successfully recovered from an error state"),
    ("counters", "local_link_integrity_errors"): _c(
        "local_link_integrity_errors_total", "Number of times that the count of local physical errors "
        "exceeded the threshold specified by LocalPhyErrors."),
    ("counters", "multicast_rcv_packets"): _c(
        "multicast_packets_received_total", "Number of multicast packets received (including errors)"),
    ("counters", "multicast_xmit_packets"): _c(
        "multicast_packets_transmitted_total", "Number of multicast packets transmitted (including errors)"),
    ("counters", "port_rcv_constraint_errors"): _c(
        "port_constraint_errors_received_total",
        "Number of packets received on the switch physical port that are discarded"),
    ("counters", "port_rcv_data"): _c(
        "port_data_received_bytes_total", "Number of data octets received on all links", WORDS),
    ("counters", "port_rcv_discards"): _c(
        "port_discards_received_total",
        "Number of inbound packets discarded by the port because the port is down or congested"),
    ("counters", "port_rcv_errors"): _c(
        "port_errors_received_total", "Number of packets containing an error that were received on this port"),
    ("counters", "port_rcv_packets"): _c(
        "port_packets_received_total", "Number of packets received on all VLs by this port (including errors)"),
    ("counters", "port_rcv_remote_physical_errors"): _c(
        "port_receive_remote_physical_errors_total",
        "Number of packets marked with the EBP (End of Bad Packet) delimiter received on the port."),
    ("counters", "port_rcv_switch_relay_errors"): _c(
        "port_receive_switch_relay_errors_total",
        "Number of packets that could not be forwarded by the switch."),
    ("counters", "port_xmit_constraint_errors"): _c(
        "port_constraint_errors_transmitted_total",
        "Number of packets not transmitted from the switch physical port"),
    ("counters", "port_xmit_data"): _c(
        "port_data_transmitted_bytes_total", "Number of data octets transmitted on all links", WORDS),
    ("counters", "port_xmit_discards"): _c(
        "port_discards_transmitted_total",
        "Number of outbound packets discarded by the port because the port is down or congested"),
    ("counters", "port_xmit_packets"): _c(
        "port_packets_transmitted_total",
        "Number of packets transmitted on all VLs from this port (including errors)"),
    ("counters", "port_xmit_wait"): _c(
        "port_transmit_wait_total", "Number of ticks during which the port had data to transmit but no data "
        "was sent during the entire tick"),
    ("counters", "symbol_error"): _c(
        "symbol_error_total", "Number of minor link errors detected on one or more physical lanes."),
    ("counters", "unicast_rcv_packets"): _c(
        "unicast_packets_received_total", "Number of unicast packets received (including errors)"),
    ("counters", "unicast_xmit_packets"): _c(
        "unicast_packets_transmitted_total", "Number of unicast packets transmitted (including errors)"),
    ("counters", "VL15_dropped"): _c(
        "vl15_dropped_total", "Number of incoming VL15 packets dropped due to resource limitations."),
    ("counters_ext", "port_multicast_rcv_packets"): _c(
        "legacy_multicast_packets_received_total", "Number of multicast packets received"),
    ("counters_ext", "port_multicast_xmit_packets"): _c(
        "legacy_multicast_packets_transmitted_total", "Number of multicast packets transmitted"),
    ("counters_ext", "port_rcv_data_64"): _c(
        "legacy_data_received_bytes_total", "Number of data octets received on all links", WORDS),
    ("counters_ext", "port_rcv_packets_64"): _c(
        "legacy_packets_received_total", "Number of data packets received on all links"),
    ("counters_ext", "port_unicast_rcv_packets"): _c(
        "legacy_unicast_packets_received_total", "Number of unicast packets received"),
    ("counters_ext", "port_unicast_xmit_packets"): _c(
        "legacy_unicast_packets_transmitted_total", "Number of unicast packets transmitted"),
    ("counters_ext", "port_xmit_data_64"): _c(
        "legacy_data_transmitted_bytes_total", "Number of data octets transmitted on all links", WORDS),
    ("counters_ext", "port_xmit_packets_64"): _c(
        "legacy_packets_transmitted_total", "Number of data packets transmitted on all links"),
    **{("hw_counters", f): _c(suffix, help_) for f, suffix, help_ in (
        ("duplicate_request", "duplicate_requests_packets_total",
         "Received duplicate requests (requests executed before)"),
        ("implied_nak_seq_err", "implied_nak_seq_errors_total",
         "Times the requester saw an ACK with a PSN larger than expected for an RDMA read or response"),
        ("local_ack_timeout_err", "local_ack_timeout_errors_total",
         "Times a QP's ACK timer expired at the sender (RC, XRC, DCT), retry limit not yet exceeded"),
        ("np_cnp_sent", "np_cnp_packets_sent_total",
         "CNP packets sent by the notification point on ECN-marked RoCEv2 traffic"),
        ("np_ecn_marked_roce_packets", "np_ecn_marked_roce_packets_received_total",
         "RoCEv2 packets received marked for congestion (ECN 11)"),
        ("out_of_buffer", "out_of_buffer_drops_total", "Drops for lack of a WQE on the associated QPs"),
        ("out_of_sequence", "out_of_sequence_packets_received_total", "Out of sequence packets received"),
        ("packet_seq_err", "packet_sequence_errors_total",
         "Received NAK sequence error packets, retry limit not exceeded"),
        ("req_cqe_error", "req_cqes_errors_total", "Requester CQEs completed with errors"),
        ("req_cqe_flush_error", "req_cqes_flush_errors_total", "Requester CQEs completed with flush errors"),
        ("req_remote_access_errors", "req_remote_access_errors_total",
         "Remote access errors seen by the requester"),
        ("req_remote_invalid_request", "req_remote_invalid_request_errors_total",
         "Remote invalid request errors seen by the requester"),
        ("resp_cqe_error", "resp_cqes_errors_total", "Responder CQEs completed with errors"),
        ("resp_cqe_flush_error", "resp_cqes_flush_errors_total", "Responder CQEs completed with flush errors"),
        ("resp_local_length_error", "resp_local_length_errors_total",
         "Local length errors seen by the responder"),
        ("resp_remote_access_errors", "resp_remote_access_errors_total",
         "Remote access errors seen by the responder"),
        ("rnr_nak_retry_err", "rnr_nak_retry_packets_received_total",
         "Received RNR NAK packets, retry limit not exceeded"),
        ("roce_adp_retrans", "roce_adp_retransmits_total", "Adaptive retransmissions of RoCE traffic"),
        ("roce_adp_retrans_to", "roce_adp_retransmits_timeout_total",
         "Times RoCE traffic reached a timeout in adaptive retransmission"),
        ("roce_slow_restart", "roce_slow_restart_used_total", "Times RoCE slow restart was used"),
        ("roce_slow_restart_cnps", "roce_slow_restart_cnps_total",
         "CNP packets generated by RoCE slow restart"),
        ("roce_slow_restart_trans", "roce_slow_restart_total", "Times RoCE changed state to slow restart"),
        ("rp_cnp_handled", "rp_cnp_packets_handled_total",
         "CNP packets handled by the reaction point to throttle the transmission rate"),
        ("rp_cnp_ignored", "rp_cnp_ignored_packets_received_total",
         "CNP packets received and ignored by the reaction point"),
        ("rx_atomic_requests", "rx_atomic_requests_total", "Received ATOMIC requests for the associated QPs"),
        ("rx_dct_connect", "rx_dct_connect_requests_total",
         "Received connection requests for the associated DCTs"),
        ("rx_icrc_encapsulated", "rx_icrc_encapsulated_errors_total", "RoCE packets with ICRC errors"),
        ("rx_read_requests", "rx_read_requests_total", "Received READ requests for the associated QPs"),
        ("rx_write_requests", "rx_write_requests_total", "Received WRITE requests for the associated QPs"),
    )},
}
STATE = FamilyDesc("node_infiniband_state_id", G, "State of the InfiniBand port (0: no change, 1: down, "
                   "2: init, 3: armed, 4: active, 5: act defer)", "", LABELS)
PHYS_STATE = FamilyDesc("node_infiniband_physical_state_id", G, "Physical state of the InfiniBand port "
                        "(0: no change, 1: sleep, 2: polling, 3: disable, 4: shift, 5: link up, "
                        "6: link error recover, 7: phytest)", "", LABELS)
RATE = FamilyDesc("node_infiniband_rate_bytes_per_second", G, "Maximum signal transfer rate", "bytes", LABELS)
LIFESPAN = FamilyDesc("node_infiniband_lifespan_seconds", G, "Period within which two reads of the "
                      "hardware counters may return the same values (hw_counters/lifespan)", "seconds", LABELS)
INFO = FamilyDesc("node_infiniband_info", G, "Non-numeric data from /sys/class/infiniband/<device>, "
                  "value is always 1.", "", ("device", "board_id", "firmware_version", "hca_type"))


class IbPort(NamedTuple):
    port: str
    state_id: int | None
    phys_state_id: int | None
    rate: float | None  # bytes per second
    counters: dict[tuple[str, str], int]  # (directory, file) -> raw value, those in COUNTERS
    lifespan_ms: int | None


class IbDevice(NamedTuple):
    name: str
    board_id: str
    firmware_version: str
    hca_type: str
    ports: list[IbPort]


def parse_state(text: str) -> int:
    """``4: ACTIVE`` -> 4.  Raises ``ValueError`` otherwise."""
    number, sep, _ = text.partition(":")
    if not sep:
        raise ValueError(f"expected 'ID: NAME', got {text!r}")
    return int(number)


def parse_rate(text: str) -> float:
    """``100 Gb/sec (4X EDR)`` -> bytes per second (12.5e9)."""
    parts = text.split()
    if len(parts) < 2 or parts[1] != "Gb/sec":
        raise ValueError(f"expected '<N> Gb/sec ...', got {text!r}")
    return float(parts[0]) * 125_000_000


def parse_counter(text: str) -> int | None:
    """One counter file; None for ``N/A (no PMA)`` (the HCA cannot read it)."""
    text = text.strip()
    if text.startswith("N/A"):
        return None
    return int(text)


def _parsed(fs: HostFS, rel: str, parse):
    value = fs.read_value(rel)
    try:
        return None if value is None else parse(value)
    except ValueError:
        return None


def read_port(fs: HostFS, base: str, port: str) -> IbPort:
    path = f"{base}/ports/{port}"
    counters: dict[tuple[str, str], int] = {}
    for directory in ("counters", "counters_ext", "hw_counters"):
        for file in fs.listdir(f"{path}/{directory}"):
            if (directory, file) in COUNTERS:
                value = _parsed(fs, f"{path}/{directory}/{file}", parse_counter)
                if value is not None:
                    counters[(directory, file)] = value
    return IbPort(port, state_id=_parsed(fs, f"{path}/state", parse_state),
                  phys_state_id=_parsed(fs, f"{path}/phys_state", parse_state),
                  rate=_parsed(fs, f"{path}/rate", parse_rate), counters=counters,
                  lifespan_ms=_parsed(fs, f"{path}/hw_counters/lifespan", parse_counter))


def read_devices(fs: HostFS) -> list[IbDevice]:
    devices = []
    for name in fs.listdir(CLASS):
        base = f"{CLASS}/{name}"
        ports = sorted((p for p in fs.listdir(f"{base}/ports") if p.isdigit()), key=int)
        devices.append(IbDevice(name, board_id=fs.read_value(f"{base}/board_id", "") or "",
                                firmware_version=fs.read_value(f"{base}/fw_ver", "") or "",
                                hca_type=fs.read_value(f"{base}/hca_type", "") or "",
                                ports=[read_port(fs, base, p) for p in ports]))
    return devices


class InfinibandCollector:
    name = "infiniband"

    def __init__(self, ctx: CollectorContext) -> None:
        self._fs = ctx.hostfs

    def collect(self, batch: Batch) -> None:
        devices = read_devices(self._fs)
        if not devices:
            raise NoData("no InfiniBand devices")
        for dev in devices:
            batch.gauge(INFO, 1, dev.name, dev.board_id, dev.firmware_version, dev.hca_type)
            for port in dev.ports:
                labels = (dev.name, port.port)
                for family, value in ((STATE, port.state_id), (PHYS_STATE, port.phys_state_id),
                                      (RATE, port.rate)):
                    if value is not None:
                        batch.gauge(family, value, *labels)
                if port.lifespan_ms is not None:
                    batch.gauge(LIFESPAN, port.lifespan_ms / 1000, *labels)
                for key, value in port.counters.items():
                    batch.counter(COUNTERS[key], value, *labels)


COLLECTOR = CollectorInfo(name="infiniband", factory=InfinibandCollector, on_scrape=True)
