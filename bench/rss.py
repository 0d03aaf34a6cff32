#!/usr/bin/env python3
"""Peak memory of a server's process tree, sampled: `rss.py PGID OUTFILE [INTERVAL]`.

bench/run.sh starts every server as the leader of its own process group (setsid), so the group
holds the server, its forked children and workers (reparented or not). Every INTERVAL seconds
(default 0.25) this sums VmHWM ("high water mark", the peak resident set each process has had
so far) over the group's live processes, and writes the largest sum seen to OUTFILE (in KiB)
each time it grows. It exits when the group is empty.

Caveats (documented in docs/benchmarks.md): a process that starts and exits between two samples
is missed (short-lived forked children), and the sum counts pages shared between processes
(the binary, libc, copy-on-write pages after fork) once per process, as `ps`/`top` add RSS up;
for forking models it is an upper bound of the real memory, not an exact figure.
"""

import os
import sys
import time


def members(pgid):
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command name, which is in parentheses and may contain spaces.
        fields = stat[stat.rfind(b")") + 2 :].split()
        if fields and fields[0] != b"Z" and int(fields[2]) == pgid:
            yield name


def hwm_kib(pid):
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main():
    pgid, out = int(sys.argv[1]), sys.argv[2]
    interval = float(sys.argv[3]) if len(sys.argv) > 3 else 0.25
    peak = 0
    while True:
        pids = list(members(pgid))
        if not pids:
            return
        total = sum(hwm_kib(p) for p in pids)
        if total > peak:
            peak = total
            with open(out + ".tmp", "w") as f:
                f.write(f"{peak}\n")
            os.replace(out + ".tmp", out)
        time.sleep(interval)


if __name__ == "__main__":
    main()
