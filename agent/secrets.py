"""Secrets (BMC passwords, private keys, tokens) read from files or systemd
credentials, and a value type that never prints them.

A secret is named in the config by where it lives, never by its value::

    file:/etc/hostagent/bmc.pass     a regular file owned by root or the
                                     agent's uid, mode 0600 or 0400
    credential:bmc-password          $CREDENTIALS_DIRECTORY/bmc-password, put
                                     there by systemd (LoadCredential=,
                                     LoadCredentialEncrypted=)

Secrets never come from argv (``ps`` shows it to every user), environment
variables (``/proc/PID/environ``, inherited by children, dumped by crash
reporters) or the config file itself.

:class:`Secret` holds the bytes.  ``repr``, ``str``, f-strings and logging
show ``Secret(file:/etc/hostagent/bmc.pass)``, never the value; only
:meth:`Secret.reveal` gives it, as ``bytes`` (pyghmi keeps stale sessions
when handed ``str`` credentials).  A ``Secret`` cannot be pickled, so it
cannot leak into a cache, a multiprocessing queue or a crash dump by that
road, and two secrets are equal only if they are the same object, so a
comparison never becomes a timing oracle on the value.

:class:`SecretError` messages name the source and what is wrong with it
(``mode 0644 is too open; chmod 600``), never the file's contents.
:func:`redact` is the last line of defence for logs and error messages: it
replaces any occurrence of a secret's value by ``***``.
"""
from __future__ import annotations

import os
import stat
from typing import Iterable, Mapping

MAX_SIZE = 64 * 1024
MASK = "***"
FILE = "file:"
CREDENTIAL = "credential:"


class SecretError(Exception):
    """A secret that cannot be loaded.  ``str()`` is ``<source>: <reason>``;
    neither part ever contains the secret's value."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class Secret:
    """A secret value that does not print itself.

    ``source`` says where it came from (``file:/etc/hostagent/bmc.pass``,
    ``credential:bmc-password``) and is safe to log.
    """

    __slots__ = ("_value", "source")

    def __init__(self, value: bytes, source: str) -> None:
        if not isinstance(value, bytes):
            raise TypeError("Secret value must be bytes")
        self._value = value
        self.source = source

    def reveal(self) -> bytes:
        """The value.  Hand it straight to the library that needs it; never
        keep it in another variable, a log field or an exception."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return format(repr(self), spec)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __hash__(self) -> int:
        return id(self)

    def __reduce_ex__(self, protocol: object) -> object:
        raise TypeError(f"{self!r} cannot be pickled")

    def __reduce__(self) -> object:
        raise TypeError(f"{self!r} cannot be pickled")

    def __getstate__(self) -> object:
        raise TypeError(f"{self!r} cannot be pickled")

    def __copy__(self) -> "Secret":
        return self  # immutable: a copy would be a second thing to leak

    def __deepcopy__(self, memo: dict) -> "Secret":
        return self


def load_secret(spec: str, *, env: Mapping[str, str] = os.environ) -> Secret:
    """Load the secret ``spec`` names (``file:/path`` or ``credential:NAME``).

    One trailing newline (``\\n`` or ``\\r\\n``) is stripped, as editors and
    ``echo`` add one.  Raises :class:`SecretError` for an unknown form, a
    missing, unreadable, empty or oversized file, a file that is not regular,
    owned by another user, or readable or writable by group or others.
    """
    if spec.startswith(FILE):
        path = spec[len(FILE):]
        if not os.path.isabs(path):
            raise SecretError(spec, "the path must be absolute")
        return Secret(_read(spec, path, check_owner_and_mode=True), spec)
    if spec.startswith(CREDENTIAL):
        name = spec[len(CREDENTIAL):]
        if not name or "/" in name or "\0" in name or name in (".", ".."):
            raise SecretError(spec, "a credential name is a plain file name (no '/')")
        directory = env.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SecretError(spec, "$CREDENTIALS_DIRECTORY is not set: run under systemd "
                                    "with LoadCredential= (or use file:/path)")
        # systemd makes this directory itself (0500, files 0400, owned by the
        # service's user, on memory that is never swapped): its modes are
        # systemd's business, not the operator's.
        return Secret(_read(spec, os.path.join(directory, name), check_owner_and_mode=False), spec)
    # Not echoed: a value without a known prefix may be the secret itself,
    # pasted into the config by mistake.
    raise SecretError("secret", "expected 'file:/path' or 'credential:NAME' "
                                "(the value given is not shown, in case it is the secret itself)")


def _read(source: str, path: str, *, check_owner_and_mode: bool) -> bytes:
    # O_NONBLOCK: a FIFO put in the secret's place must not hang the start.
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise SecretError(source, f"{path}: no such file") from None
    except PermissionError:
        raise SecretError(source, f"{path}: permission denied") from None
    except OSError as exc:
        raise SecretError(source, f"{path}: cannot open: {exc.strerror}") from None
    try:
        st = os.fstat(fd)  # of what was opened: a symlink is judged by its target
        where = _describe(path)
        if not stat.S_ISREG(st.st_mode):
            raise SecretError(source, f"{where} is not a regular file")
        if check_owner_and_mode:
            _check_owner_and_mode(source, where, st)
        if st.st_size > MAX_SIZE:
            raise SecretError(source, f"{where} is larger than {MAX_SIZE // 1024} KiB")
        data = _read_all(source, where, fd)
    finally:
        os.close(fd)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        raise SecretError(source, f"{where} is empty")
    return data


def _describe(path: str) -> str:
    if os.path.islink(path):
        return f"{path} (a symlink to {os.path.realpath(path)})"
    return path


def _check_owner_and_mode(source: str, where: str, st: os.stat_result) -> None:
    uid = os.geteuid()
    if st.st_uid not in (0, uid):
        raise SecretError(source, f"{where} is owned by uid {st.st_uid}; it must be owned by "
                                  f"root or the agent's uid {uid}")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise SecretError(source, f"{where}: mode {mode:04o} is too open; chmod 600")


def _read_all(source: str, where: str, fd: int) -> bytes:
    chunks, size = [], 0
    try:
        while size <= MAX_SIZE:
            chunk = os.read(fd, MAX_SIZE + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise SecretError(source, f"{where}: cannot read: {exc.strerror}") from None
    if size > MAX_SIZE:  # it grew after fstat
        raise SecretError(source, f"{where} is larger than {MAX_SIZE // 1024} KiB")
    return b"".join(chunks)


def redact(text: str, secrets: Iterable[Secret]) -> str:
    """``text`` with every occurrence of any secret's value replaced by
    ``***``: the value as text and as it appears inside a ``bytes`` repr
    (``b'...'``).  Longer forms go first, so a secret that contains another
    is masked whole."""
    forms: set[str] = set()
    for secret in secrets:
        value = secret.reveal()
        try:
            forms.add(value.decode())
        except UnicodeDecodeError:
            forms.add(value.decode("latin-1"))
        forms.add(repr(value)[2:-1])
    for form in sorted(forms, key=len, reverse=True):
        if form:
            text = text.replace(form, MASK)
    return text
