"""The kernel clock discipline's state through ``adjtimex(2)``, read-only.

Called with ``modes = 0`` the syscall changes nothing and needs no privilege;
it fills a ``struct timex`` and returns the clock state (``TIME_OK`` ..
``TIME_ERROR``).  glibc's declaration (``<bits/timex.h>``)::

    struct timex {
        unsigned int modes;
        long offset, freq, maxerror, esterror;
        int status;
        long constant, precision, tolerance;
        struct timeval time;            /* long tv_sec, tv_usec */
        long tick, ppsfreq, jitter;
        int shift;
        long stabil, jitcnt, calcnt, errcnt, stbcnt;
        int tai;
        int :32; ... (11 padding ints)
    };
"""
from __future__ import annotations

import ctypes
import os
from typing import NamedTuple

TIME_ERROR = 5  # clock state: not synchronised to a reliable source
STA_NANO = 0x2000  # status bit: offset/jitter are in ns, else in us

_long, _int = ctypes.c_long, ctypes.c_int


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", _long), ("tv_usec", _long)]


class _Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", _long), ("freq", _long), ("maxerror", _long),
        ("esterror", _long), ("status", _int), ("constant", _long), ("precision", _long),
        ("tolerance", _long), ("time", _Timeval), ("tick", _long), ("ppsfreq", _long),
        ("jitter", _long), ("shift", _int), ("stabil", _long), ("jitcnt", _long),
        ("calcnt", _long), ("errcnt", _long), ("stbcnt", _long), ("tai", _int),
        ("_padding", _int * 11),
    ]


class Timex(NamedTuple):
    """The raw fields, in the kernel's units (see adjtimex(2) NOTES)."""

    state: int  # the return value: TIME_OK (0) .. TIME_ERROR (5)
    offset: int  # us, or ns with STA_NANO
    freq: int  # ppm with a 16-bit fraction
    maxerror: int  # us
    esterror: int  # us
    status: int  # STA_* bits
    constant: int  # PLL time constant
    tick: int  # us between clock ticks
    ppsfreq: int  # ppm with a 16-bit fraction
    jitter: int  # us, or ns with STA_NANO
    shift: int  # PPS interval, log2 seconds
    stabil: int  # ppm with a 16-bit fraction
    jitcnt: int
    calcnt: int
    errcnt: int
    stbcnt: int
    tai: int  # TAI - UTC, seconds


def read_timex() -> Timex:
    """One read-only ``adjtimex`` call.  Raises ``OSError`` (``EPERM`` where
    a seccomp filter refuses the syscall)."""
    libc = ctypes.CDLL(None, use_errno=True)
    tx = _Timex()  # zeroed: modes = 0 reads without adjusting anything
    state = libc.adjtimex(ctypes.byref(tx))
    if state == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"adjtimex: {os.strerror(err)}")
    return Timex(state, *(getattr(tx, name) for name in Timex._fields[1:]))
