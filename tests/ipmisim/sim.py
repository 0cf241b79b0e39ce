"""IpmiSim: one OpenIPMI ``ipmi_sim`` process serving IPMI-over-LAN on 127.0.0.1.

Life cycle: ``IpmiSim(workdir).start()`` writes lan.conf + the emu command
file, starts ``ipmi_sim -n`` (no stdin console), opens the TCP console (and
keeps it open: the emulator's console is how we set sensors / add SEL
entries at run time) and waits until the BMC answers a session-less Get
Channel Authentication Capabilities on the UDP port.  ``stop()`` quits it,
``kill()`` SIGKILLs it (the state dir survives, ``start()`` again reuses the
same ports).  Every started process is also killed at interpreter exit.
"""
from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import struct
import subprocess
import time
import weakref
from pathlib import Path

from . import build, config, content
from .content import BMC_ADDR, SimSensor

CHASSIS_SCRIPT = Path(__file__).with_name("chassis_control.sh")
_live: "weakref.WeakSet[IpmiSim]" = weakref.WeakSet()


class SimError(RuntimeError):
    pass


class IpmitoolError(SimError):
    def __init__(self, args, res: subprocess.CompletedProcess):
        super().__init__(f"ipmitool {' '.join(args)} failed (rc {res.returncode}): "
                         f"{res.stderr.strip() or res.stdout.strip()}")
        self.returncode, self.stdout, self.stderr = res.returncode, res.stdout, res.stderr


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _auth_cap_ping() -> bytes:
    """IPMI 1.5 session-less Get Channel Authentication Capabilities (IPMI 2.0
    bit set, ADMIN): answered by the MC itself, so a reply proves the LAN
    channel AND the BMC are up; far cheaper than forking ipmitool."""
    hdr = bytes([BMC_ADDR, 0x06 << 2])
    body = bytes([0x81, 0x00, 0x38, 0x8E, 0x04])
    msg = hdr + bytes([(-sum(hdr)) & 0xFF]) + body + bytes([(-sum(body)) & 0xFF])
    return bytes([0x06, 0x00, 0xFF, 0x07, 0x00]) + b"\0" * 8 + bytes([len(msg)]) + msg


class IpmiSim:
    ADMIN = ("admin", "adminpass")
    OPERATOR = ("operator", "operpass")
    host = "127.0.0.1"

    def __init__(self, workdir: Path, sensors: int = 8, power_on: bool = True):
        self.workdir = Path(workdir)
        self.statedir = self.workdir / "state"
        self.statedir.mkdir(parents=True, exist_ok=True)
        self.port = _free_port(socket.SOCK_DGRAM)
        self.console_port = _free_port(socket.SOCK_STREAM)
        self.guid = content.guid_for(str(self.workdir.resolve()))
        self.sensors: list[SimSensor] = content.make_sensors(sensors)
        self.fru: dict[str, str] = dict(content.FRU_STRINGS)
        self.fru_image = content.make_fru()
        self.values = {s.number: s.value for s in self.sensors}   # last value set, converted
        self.log_path = self.workdir / "ipmi_sim.log"
        self._proc: subprocess.Popen | None = None
        self._console: socket.socket | None = None
        (self.workdir / "sim.emu").write_text(config.render_emu(self.sensors, self.fru_image))
        state = self.statedir / "power_state"
        if not state.exists():
            state.write_text("1\n" if power_on else "0\n")
        power = self.sensor_by_name("PSU1 Power")
        self._write_power_file(power.value)
        _live.add(self)

    # --- lookup -------------------------------------------------------------
    def sensor(self, number: int) -> SimSensor:
        for s in self.sensors:
            if s.number == number:
                return s
        raise KeyError(number)

    def sensor_by_name(self, name: str) -> SimSensor:
        for s in self.sensors:
            if s.name == name:
                return s
        raise KeyError(name)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # --- process control ------------------------------------------------------
    def start(self, timeout: float = 15.0) -> "IpmiSim":
        if self.running:
            return self
        module = build.module_path()
        (self.workdir / "lan.conf").write_text(config.render_lan_conf(
            port=self.port, console_port=self.console_port, guid=self.guid,
            statedir=self.statedir.resolve(),
            # via /bin/sh: works even if the checkout lost the exec bit
            chassis_script=Path(f"/bin/sh {CHASSIS_SCRIPT.resolve()}"),
            module=module, module_options=str(self.statedir.resolve())))
        log = open(self.log_path, "ab")
        try:
            self._proc = subprocess.Popen(
                ["ipmi_sim", "-n", "-c", "lan.conf", "-f", "sim.emu", "-s", str(self.statedir)],
                cwd=self.workdir, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)   # own process group: stop() reaps script children too
        finally:
            log.close()
        try:
            deadline = time.monotonic() + timeout
            self._open_console(deadline)
            self._wait_lan(deadline)
        except BaseException:
            self.kill()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Graceful: SIGTERM, then SIGKILL.  Idempotent.

        Not the console's ``quit``: ipmi_sim 2.0.33 then aborts on an
        assertion (selector.c valid_fd).  Nothing is lost on SIGTERM: the
        SEL, users and LAN parameters are written to the state dir on every
        change."""
        self._terminate(signal.SIGTERM, timeout)
        self._terminate(signal.SIGKILL, timeout)

    def kill(self) -> None:
        """SIGKILL (a BMC crash).  State dir and ports stay; start() again works."""
        self._terminate(signal.SIGKILL, 5.0)

    def _close_console(self) -> None:
        # Reset (SO_LINGER 0) instead of a FIN: when ipmi_sim dies with the
        # connection open, the kernel leaves its console port in TIME_WAIT
        # and, as ipmi_sim binds without SO_REUSEADDR, a restart on the
        # same port fails with "bind to console socket: Address already in
        # use".  A reset connection leaves no TIME_WAIT on either side.
        if self._console is not None:
            try:
                self._console.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                         struct.pack("ii", 1, 0))
            except OSError:
                pass
            self._console.close()
            self._console = None

    def _terminate(self, sig: int, timeout: float) -> None:
        proc = self._proc
        if proc is None:
            return
        self._close_console()   # first; ipmi_sim exits on console loss anyway
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, sig)   # our own session: only what we started
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return
        self._proc = None

    def __enter__(self) -> "IpmiSim":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise SimError(f"ipmi_sim exited with {self._proc.returncode}; log:\n{tail}")

    # --- console --------------------------------------------------------------
    def _open_console(self, deadline: float) -> None:
        while True:
            self._check_alive()
            try:
                s = socket.create_connection((self.host, self.console_port), timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise SimError(f"console port {self.console_port} never opened")
                time.sleep(0.02)
        s.settimeout(10)
        self._console = s
        self._read_prompt()   # telnet negotiation bytes + first prompt

    def _read_prompt(self) -> str:
        buf = b""
        while not buf.endswith(b"> "):
            chunk = self._console.recv(4096)
            if not chunk:
                raise SimError("ipmi_sim closed the console")
            buf += chunk
        return buf[:-2].decode("latin-1")

    def console(self, command: str) -> str:
        """Run one emulator command (ipmi_sim_cmd(5)); return its output.

        The console echoes the command and answers "**<error>" on failure."""
        if self._console is None:
            raise SimError("simulator not running")
        self._console.sendall(command.encode() + b"\n")
        out = self._read_prompt().replace("\r", "")
        lines = out.split("\n")
        if lines and lines[0].strip() == command.strip():
            lines = lines[1:]                    # drop the echo
        text = "\n".join(lines).strip()
        if text.startswith("**"):
            raise SimError(f"console command {command!r} failed: {text}")
        return text

    # --- LAN readiness ----------------------------------------------------------
    def ping(self, timeout: float = 0.5) -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(timeout)
            try:
                s.sendto(_auth_cap_ping(), (self.host, self.port))
                data = s.recv(512)
            except OSError:
                return False
        # RMCP(4) + session hdr(10) + rqAddr netfn chk rsAddr seq cmd, then cc
        return len(data) > 20 and data[20] == 0x00

    def _wait_lan(self, deadline: float) -> None:
        while not self.ping(0.2):
            self._check_alive()
            if time.monotonic() > deadline:
                raise SimError(f"BMC never answered on udp/{self.port}")

    # --- run-time knobs -----------------------------------------------------------
    def set_sensor(self, number: int, value: float) -> float:
        """Set a sensor's converted value (threshold) or state bitmask
        (discrete).  Returns the value a reader will see (quantised to the
        sensor's resolution)."""
        s = self.sensor(number)
        a = f"0x{BMC_ADDR:02x} 0 {number}"
        if s.is_threshold:
            raw = s.to_raw(value)
            self.console(f"sensor_set_value {a} 0x{raw:02x} 0")
            seen = s.from_raw(raw)
        else:
            bits = int(value)
            for bit in range(8):
                self.console(f"sensor_set_bit {a} {bit} {(bits >> bit) & 1} 0")
            seen = bits
        self.values[number] = seen
        return seen

    def _write_power_file(self, watts: float) -> None:
        tmp = self.statedir / "power_watts.tmp"
        tmp.write_text(f"{watts}\n")
        os.replace(tmp, self.statedir / "power_watts")   # simext reads it per request

    def set_power_watts(self, watts: float) -> None:
        """DCMI Get Power Reading returns round(watts); "PSU1 Power" shows the
        nearest 4 W step."""
        self._write_power_file(watts)
        if self.running:
            self.set_sensor(self.sensor_by_name("PSU1 Power").number, watts)

    def add_sel(self, sensor_number: int, event_type: int = 0x01,
                data: tuple[int, int, int] = (0x00, 0xFF, 0xFF), *,
                deassert: bool = False, sensor_type: int | None = None) -> int:
        """Add a system event record (type 0x02) as if the BMC generated it
        for ``sensor_number``.  ``event_type`` is the event/reading type code
        (0x01 threshold, 0x6f sensor-specific); ``data`` is event data 1-3
        (data[0] low nibble = offset).  Returns the SEL record id."""
        if sensor_type is None:
            sensor_type = self.sensor(sensor_number).sdr_bytes()[12]
        dir_type = (0x80 if deassert else 0x00) | (event_type & 0x7F)
        # 13 bytes: timestamp (ipmi_sim fills it in), generator id, EvM rev, ...
        ev = [0, 0, 0, 0, BMC_ADDR, 0x00, 0x04, sensor_type, sensor_number, dir_type, *data]
        out = self.console(f"sel_add 0x{BMC_ADDR:02x} 0x02 " + " ".join(f"0x{b:02x}" for b in ev))
        # "Added record 3"
        try:
            return int(out.rsplit(None, 1)[-1], 0)
        except (ValueError, IndexError):
            raise SimError(f"unexpected sel_add output: {out!r}") from None

    def chassis_log(self) -> list[dict]:
        """Records from chassis_control.sh and simext.c, oldest first:
        {"op": "power", "value": "on"|"off"|"reset"|"soft"} (a power cycle is
        "off" then "on" about 1 s later), {"op": "identify", "interval": s,
        "force": bool}, {"op": "boot", "value": "pxe"|"disk"|..., "valid",
        "persistent", "efi", "raw"}.  Each has a "ts" (epoch seconds)."""
        path = self.statedir / "chassis.log"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    @property
    def power_on(self) -> bool:
        return (self.statedir / "power_state").read_text().strip() == "1"

    # --- clients -------------------------------------------------------------
    def ipmitool_cmd(self, *args: str, user=ADMIN, cipher: int = 3,
                     priv: str | None = None) -> list[str]:
        # ipmitool asks for ADMINISTRATOR unless told (-L); an OPERATOR user
        # then fails at RAKP, so default -L to the user's own level.
        if priv is None:
            priv = "OPERATOR" if user[0] == self.OPERATOR[0] else "ADMINISTRATOR"
        return ["ipmitool", "-I", "lanplus", "-H", self.host, "-p", str(self.port),
                "-U", user[0], "-P", user[1], "-C", str(cipher), "-L", priv,
                "-N", "1", "-R", "3",   # 1 s timeout x 3 tries: a dead BMC fails fast
                *map(str, args)]

    def ipmitool(self, *args: str, user=ADMIN, cipher: int = 3, check: bool = True,
                 priv: str | None = None, timeout: float = 60) -> str:
        """Run ipmitool against this BMC; stdout (check=True, raises
        IpmitoolError on failure) or stdout+stderr (check=False)."""
        cmd = self.ipmitool_cmd(*args, user=user, cipher=cipher, priv=priv)
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
        if check:
            if res.returncode != 0:
                raise IpmitoolError(args, res)
            return res.stdout
        return res.stdout + res.stderr

    def pyghmi_command(self, user=ADMIN, **kw):
        """A logged-in pyghmi Command (call .ipmi_session.logout() when done)."""
        from pyghmi.ipmi import command
        return command.Command(bmc=self.host, userid=user[0].encode(),
                               password=user[1].encode(), port=self.port, kg=None, **kw)


@atexit.register
def _kill_leftovers() -> None:
    for sim in list(_live):
        try:
            sim.kill()
        except Exception:
            pass
