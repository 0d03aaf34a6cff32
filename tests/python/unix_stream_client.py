"""The documentation's TCP client written for AF_UNIX, SOCK_STREAM (Python's UnixStreamServer).

    python3 tests/python/unix_stream_client.py PATH WORDS...

Only the address changes: a path instead of (host, port). The client binds no name of its
own, so the server sees it as an unnamed peer, as it sees almost every Unix stream client.
"""
import socket
import sys

PATH = sys.argv[1]
data = " ".join(sys.argv[2:])

with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
    sock.connect(PATH)
    sock.sendall(bytes(data + "\n", "utf-8"))
    received = str(sock.recv(1024), "utf-8")

print("Sent:    ", data)
print("Received:", received)
