#!/usr/bin/env python3
"""vapclient.py CONTROL DADDR DPORT PASSWORD ws|plain tls|notls|either [TIMEOUT]:
a byte-exact stand-in for Ganeti Web Manager's vapclient (its
`request_forwarding`): the request is `json.dumps(request) + "\\r\\n"` on a
fresh TCP connection, the answer `recv(1024).strip()`, and an answer that
starts with "FAIL" is a failure. Prints the entry port; exits 1 on failure.
CONTROL is HOST:PORT; `either` leaves the "tls" key out (the entry point
decides). For the interop suite's GWM-dialect scenarios."""
import json
import socket
import sys

control, daddr, dport, password, ws, tls = sys.argv[1:7]
host, port = control.rsplit(":", 1)
request = {"daddr": daddr, "dport": int(dport), "password": password,
           "ws": ws == "ws"}
if tls != "either":
    request["tls"] = tls == "tls"
if len(sys.argv) > 7:
    request["timeout"] = int(sys.argv[7])

s = socket.create_connection((host, int(port)), timeout=20)
s.send((json.dumps(request) + "\r\n").encode())
response = s.recv(1024).strip().decode()
s.close()
if response.startswith("FAIL"):
    print(response)
    sys.exit(1)
print(int(response))
