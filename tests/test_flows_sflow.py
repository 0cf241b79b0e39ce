"""sFlow v5 export: the encoder's layout, then the whole path checked by
real tools: packets sampled on a veth in test namespaces, datagrams sent to
pmacct's ``sfacctd`` on 127.0.0.1 (whose decoded flows must agree with what
was sent, sampling rate included), captured on lo and decoded by
``tcpdump -vv`` without an error."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time

import pytest

from agent import core
from agent.flows import sflow
from agent.flows.config import CollectorAddress, SamplingConfig
from agent.flows.exporter import SflowExporter
from agent.flows.hub import FlowHub
from agent.flows.sampler import Sampler
from tests.flows_traffic import A_IP, B_IP, send_udp, udp_sink, veth_pair
from tests.netns import ip

AGENT = sflow.encode_address("192.0.2.7")


def test_datagram_header_and_flow_sample_layout():
    header = bytes(range(60))
    s = sflow.flow_sample(7, 12, sflow.DIR_OUT, 100, 700, 3, 1514, header, vni=4242)
    fmt, length = struct.unpack_from(">II", s)
    assert (fmt, length) == (sflow.FLOW_SAMPLE, len(s) - 8)
    seq, source, rate, pool, drops, inp, out, n = struct.unpack_from(">8I", s, 8)
    assert (seq, source, rate, pool, drops, inp, out, n) == (7, 12, 100, 700, 3, 0, 12, 2)
    rec_fmt, rec_len, proto, frame_len, stripped, hlen = struct.unpack_from(">6I", s, 40)
    assert (rec_fmt, proto, frame_len, stripped, hlen) == (sflow.RAW_HEADER, 1, 1514, 0, 60)
    assert s[64:124] == header and rec_len == 16 + 60
    assert struct.unpack_from(">III", s, 124) == (sflow.VNI_EGRESS, 4, 4242)
    d = sflow.datagram(AGENT, 9, 5, 1234, [s])
    assert struct.unpack_from(">II4sIIII", d) == (5, 1, socket.inet_aton("192.0.2.7"), 9, 5, 1234, 1)
    assert d[28:] == s


def test_counters_sample_is_the_88_byte_generic_record():
    c = sflow.IfCounters(ifindex=3, speed_bps=10**10, full_duplex=True, admin_up=True, oper_up=True,
                         in_octets=2**40, in_ucast=2**32 + 5, out_octets=9)
    s = sflow.counters_sample(1, c)
    assert struct.unpack_from(">IIIIIII", s) == (2, len(s) - 8, 1, 3, 1, 1, 88)
    index, iftype, speed, direction, status, in_octets, in_ucast = struct.unpack_from(">IIQIIQI", s, 28)
    assert (index, iftype, speed, direction, status) == (3, 6, 10**10, 1, 3)
    assert in_octets == 2**40 and in_ucast == 5  # 32-bit counters wrap, as in the MIB


def test_samples_are_split_under_the_datagram_limit():
    samples = [sflow.flow_sample(i, 1, 0, 1, i, 0, 200, bytes(128)) for i in range(40)]
    groups = sflow.pack_samples(AGENT, samples)
    assert sum(len(g) for g in groups) == 40 and len(groups) > 1
    assert all(len(sflow.datagram(AGENT, 0, 1, 0, g)) <= sflow.MAX_DATAGRAM for g in groups)


def test_exporter_sequences_and_pool():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(2)
    exp = SflowExporter([CollectorAddress("127.0.0.1", rx.getsockname()[1])], "127.0.0.1", 3)
    try:
        exp.flow_samples(5, 10, 10, 0, [(0, 100, bytes(64))])
        exp.flow_samples(5, 10, 20, 0, [(1, 100, bytes(64))])
        seqs = []
        for _ in range(2):
            d = rx.recv(2000)
            seqs.append((struct.unpack_from(">I", d, 16)[0], struct.unpack_from(">I", d, 36)[0]))
        assert seqs == [(1, 1), (2, 2)]  # datagram sequence, then the source's flow sequence
        exp.forget(5)
        exp.flow_samples(5, 10, 10, 0, [(0, 100, bytes(64))])
        d = rx.recv(2000)
        assert struct.unpack_from(">I", d, 36)[0] == 1  # a new source with that ifindex
    finally:
        exp.close()
        rx.close()


def _stop_group(proc: subprocess.Popen) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(2)
            return
        except subprocess.TimeoutExpired:
            continue


def _sflow_port_free() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", sflow.PORT))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not shutil.which("sfacctd") or not shutil.which("tcpdump"),
                    reason="needs pmacct's sfacctd and tcpdump (scripts/bootstrap.sh test)")
def test_sfacctd_and_tcpdump_decode_what_the_agent_sends(netns, peer_netns, tmp_path):
    ifindex = veth_pair(netns, peer_netns)
    for ns, local, remote, dev, inner in ((netns, A_IP, B_IP, "va", "192.168.43.1/24"),
                                          (peer_netns, B_IP, A_IP, "vb", "192.168.43.2/24")):
        ip("link", "add", "vx0", "type", "vxlan", "id", "77", "local", local, "remote", remote,
           "dstport", "4789", "dev", dev, ns=ns)
        ip("addr", "add", inner, "dev", "vx0", ns=ns)
        ip("link", "set", "vx0", "up", ns=ns)
    # sFlow's own port: tcpdump recognizes sFlow by it
    port = sflow.PORT
    if not _sflow_port_free():
        pytest.skip(f"127.0.0.1:{port} is in use (another sFlow collector on this machine)")
    out = tmp_path / "sfacctd.json"
    (tmp_path / "sfacctd.conf").write_text(f"""daemonize: false
sfacctd_ip: 127.0.0.1
sfacctd_port: {port}
plugins: print
aggregate: src_host, dst_host, src_port, dst_port, proto, sampling_rate, in_iface, out_iface
print_output: json
print_output_file: {out}
print_output_file_append: true
print_refresh_time: 1
sfacctd_renormalize: false
""")
    pcap = tmp_path / "sflow.pcap"
    # its own session: sfacctd forks its plugin, and the whole group is stopped
    collector = subprocess.Popen(["sfacctd", "-f", str(tmp_path / "sfacctd.conf")], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    capture = subprocess.Popen(["tcpdump", "-i", "lo", "-n", "-U", "-Z", "root", "-w", str(pcap),
                                f"udp dst port {port}"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    rate = 10
    cfg = SamplingConfig(interfaces=("va",), namespace=netns, rate=rate, libvirt_dir="", polling_interval=1.0)
    exporter = SflowExporter([CollectorAddress("127.0.0.1", port)], "127.0.0.1", 1)
    sampler = Sampler(cfg, FlowHub(1024), core.FlowTable(1024), core.parse_frame, exporter, flush_interval=0.2)
    sink = udp_sink(peer_netns, B_IP, 6343 + 1)
    vx_sink = udp_sink(peer_netns, "192.168.43.2", 8000)
    try:
        time.sleep(1.0)  # sfacctd and tcpdump listening
        sampler.start()
        time.sleep(0.3)
        send_udp(netns, A_IP, 5300, B_IP, 6344, 300, 3000, pace_every=300)
        send_udp(netns, "192.168.43.1", 7000, "192.168.43.2", 8000, 100, 300)  # ~30 with the VNI record
        time.sleep(2.5)  # rings retire, counters polled, sfacctd writes (every second)
        ours = [f for f in sampler.hub.query(60, 100).flows if f.protocol == 17 and f.dst_port == 6344]
        assert len(ours) == 1 and ours[0].packets > 0
        sent_datagrams = exporter.datagrams
    finally:
        sink.close()
        vx_sink.close()
        sampler.close()
        time.sleep(1.2)  # sfacctd's next write
        capture.terminate()
        capture.wait(5)
        _stop_group(collector)
    # sfacctd: the same flow; its raw sample counts times the rate it read are our estimate
    records = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    mine = [r for r in records if r.get("ip_src") == A_IP and r.get("port_dst") == 6344]
    assert mine, records[:5]
    assert {r["sampling_rate"] for r in mine} == {rate}
    assert {(r["ip_dst"], r["port_src"], r["ip_proto"].lower(), r["iface_out"]) for r in mine} == {
        (B_IP, 5300, "udp", ifindex)}
    assert sum(r["packets"] for r in mine) * rate == ours[0].packets
    assert sum(r["bytes"] for r in mine) * rate == ours[0].bytes
    # tcpdump: every datagram decodes, flow and counter samples both there
    text = subprocess.run(["tcpdump", "-vv", "-n", "-r", str(pcap)], capture_output=True, text=True,
                          check=True).stdout
    assert text.count("sFlowv5") == sent_datagrams
    for bad in ("[|sflow]", "malformed", "truncated", "Invalid"):
        assert bad not in text, text[:2000]
    assert "flow sample" in text and "counter sample" in text
    # VXLAN samples carry extended_vni_egress (1029), which tcpdump walks by its length
    assert "enterprise 0 Unknown (1029) length 4" in text
    assert f"agent 127.0.0.1, agent-id 1" in text
