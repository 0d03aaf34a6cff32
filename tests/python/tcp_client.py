"""The TCP client of Python's socketserver documentation, with the address as arguments.

    python3 tests/python/tcp_client.py HOST PORT WORDS...

Sends WORDS as one line to the echo server (examples/echo_server.rs) and prints what came back,
exactly as the documentation's client does (tests/echo.rs runs it against every strategy).
"""
import socket
import sys

HOST, PORT = sys.argv[1], int(sys.argv[2])
data = " ".join(sys.argv[3:])

# Create a socket (SOCK_STREAM means a TCP socket)
with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
    # Connect to server and send data
    sock.connect((HOST, PORT))
    sock.sendall(bytes(data + "\n", "utf-8"))

    # Receive data from the server and shut down
    received = str(sock.recv(1024), "utf-8")

print("Sent:    ", data)
print("Received:", received)
