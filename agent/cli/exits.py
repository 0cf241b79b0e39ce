"""Exit codes of every ``hostagent`` command, and the one way a command
reports a problem on stderr (``hostagent: <message>``)."""
from __future__ import annotations

import signal
import sys

EXIT_OK = 0
EXIT_FAILED = 1        # unhealthy, a collector or BMC down, an operation failed, nothing matched
EXIT_USAGE = 2         # bad flags, arguments, files or config
EXIT_UNREACHABLE = 3   # the agent did not answer (or refused the TLS handshake)
EXIT_INTERRUPTED = 130                  # Ctrl-C, as a shell reports it
EXIT_PIPE = 128 + signal.SIGPIPE        # 141: the reader of stdout went away, as for `ls | head`

EXIT_CODES_HELP = ("exit codes: 0 ok; 1 unhealthy, failed, or nothing matched; 2 usage error; "
                   "3 agent unreachable; 130 interrupted; 141 output pipe closed early (quietly, "
                   "as 'ls | head')")


class UsageError(Exception):
    """A problem with what the operator asked for; ``main`` prints it and
    exits 2."""


def warn(message: str) -> None:
    print(f"hostagent: {message}", file=sys.stderr)
