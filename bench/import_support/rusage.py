"""Run a command; write its wall time, peak RSS and CPU time as JSON.

    python rusage.py OUT.json COMMAND [ARG ...]

bench/import.py starts the command through this small process rather than directly,
because Linux carries the peak RSS of the process that calls exec over into the new
program's ``ru_maxrss``: started straight from the benchmark (a vfork of a process that
has just generated a million addresses), the command would report the benchmark's peak
instead of its own. Forked from this process, it inherits at most this one's few MiB.
"""

import json
import os
import signal
import sys
import time


def main():
    out, argv = sys.argv[1], sys.argv[2:]
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    # bench/import.py stops a command that runs past its time limit by terminating this
    # process: pass it on, and still report the command's usage.
    signal.signal(signal.SIGTERM, lambda signum, frame: os.kill(pid, signal.SIGTERM))
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as file:
        json.dump(
            {
                "pid": pid,
                "wall": wall,
                "maxrss_kib": usage.ru_maxrss,
                "user": usage.ru_utime,
                "system": usage.ru_stime,
                "exit": code,
            },
            file,
        )
    sys.exit(code if code >= 0 else 1)


if __name__ == "__main__":
    main()
