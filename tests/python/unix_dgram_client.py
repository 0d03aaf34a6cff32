"""The documentation's UDP client written for AF_UNIX, SOCK_DGRAM (Python's UnixDatagramServer).

    python3 tests/python/unix_dgram_client.py PATH WORDS...

One change beyond the address: the client binds a name of its own (PATH.client-PID, removed at
the end) before it sends. A UDP socket gets a port from the kernel on its first sendto; a Unix
datagram socket gets nothing, and a datagram from a socket without a name cannot be answered.
"""
import os
import socket
import sys

PATH = sys.argv[1]
data = " ".join(sys.argv[2:])
me = f"{PATH}.client-{os.getpid()}"

sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(me)
try:
    sock.sendto(bytes(data + "\n", "utf-8"), PATH)
    received = str(sock.recv(1024), "utf-8")
finally:
    sock.close()
    os.unlink(me)

print("Sent:    ", data)
print("Received:", received)
