#!/usr/bin/env python3
"""bench/idle_conns.py PROXY_PORT HOST PORT N HOLD_S: scenario 5's proxy memory load.
Opens N connections through the proxy (CONNECT HOST:PORT, then a TLS handshake with the proxy's
intercepting certificate), holds them idle HOLD_S seconds, then closes them. Prints how many
got through. bench/run reads the proxy's RSS while they are held (it waits for 'ready')."""
import socket
import ssl
import sys
import time

pport, host, port, n, hold = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), \
    float(sys.argv[5])
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
conns, failed = [], 0
for i in range(n):
	try:
		s = socket.create_connection(("127.0.0.1", pport), timeout=10)
		s.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (host, port, host, port))
		    .encode())
		head = b""
		while b"\r\n\r\n" not in head and len(head) < 8192:
			chunk = s.recv(1)
			if not chunk:
				break
			head += chunk
		if not head.startswith(b"HTTP/1.") or head[9:10] != b"2":
			raise OSError("CONNECT refused: %r" % head[:40])
		conns.append(ctx.wrap_socket(s, server_hostname=host))
	except OSError:
		failed += 1
print("ready %d %d" % (len(conns), failed), flush=True)
time.sleep(hold)
for c in conns:
	c.close()
