#!/usr/bin/env python3
"""Print a quorate-node member's own idea of the time, in seconds since the epoch.

Usage: node_time.py HOST:PORT. With the node in lww mode, a write's version is the
coordinating member's clock in microseconds: write a scratch key through the member and
print that. A target file's member.time_command, so quorate can check clock skew took effect.
"""
import http.client
import json
import sys

conn = http.client.HTTPConnection(sys.argv[1], timeout=2.0)
conn.request("PUT", "/kv/quorate-clock-probe", body=json.dumps({"value": 0}),
             headers={"Content-Type": "application/json"})
version = json.loads(conn.getresponse().read())["version"]
print(version["ts"] / 1e6)
