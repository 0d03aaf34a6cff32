"""The UDP client of Python's socketserver documentation, with the address as arguments.

    python3 tests/python/udp_client.py HOST PORT WORDS...

Sends WORDS as one datagram to the echo server started with --udp and prints the datagram that
came back, exactly as the documentation's client does (tests/echo.rs runs it).
"""
import socket
import sys

HOST, PORT = sys.argv[1], int(sys.argv[2])
data = " ".join(sys.argv[3:])

# SOCK_DGRAM is the socket type to use for UDP sockets
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

# As you can see, there is no connect() call; UDP has no connections.
# Instead, data is directly sent to the recipient via sendto().
sock.sendto(bytes(data + "\n", "utf-8"), (HOST, PORT))
received = str(sock.recv(1024), "utf-8")

print("Sent:    ", data)
print("Received:", received)
