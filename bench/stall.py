#!/usr/bin/env python3
"""Stall watchdog: `stall.py OUTFILE`. Sleeps 10 ms at a time and appends a line
`WALL_END_SECONDS GAP_SECONDS` to OUTFILE whenever a sleep took more than 0.2 s longer than
asked, i.e. when the whole machine stopped running this process (on a virtual machine: the
host paused the guest or took its CPUs). bench/run.sh repeats a measurement that such a stall
overlapped, because its numbers would measure the host, not the server.
"""

import sys
import time

out = open(sys.argv[1], "a", buffering=1)
last = time.monotonic()
while True:
    time.sleep(0.01)
    now = time.monotonic()
    gap = now - last
    last = now
    if gap > 0.2:
        out.write(f"{time.time():.3f} {gap:.3f}\n")
