"""Run a command and write its own CPU and peak RSS as JSON to the file named first.

Why a helper: a child forked from a large process inherits that process's memory high-water mark in
its ru_maxrss (the kernel carries it across exec), so a benchmark process holding a 475k-request plan
made regprobe look 476 MiB big. Started from this small process instead, the command's figures are
its own.

    python -m bench.rusage OUT.json -- COMMAND...
"""

from __future__ import annotations

import json
import os
import subprocess
import sys


def main() -> None:
    out, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        raise SystemExit(__doc__)
    proc = subprocess.Popen(command)
    _, status, usage = os.wait4(proc.pid, 0)
    with open(out, "w") as f:
        json.dump({"cpu": usage.ru_utime + usage.ru_stime, "maxrss": usage.ru_maxrss * 1024}, f)
    sys.exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
