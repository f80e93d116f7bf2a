#!/usr/bin/env python3
"""quorate adapter for Redis with replicas, standard library only.

Usage: redis.py BOUND_HOST:PORT PRIMARY_HOST:PORT

Writes, compare-and-set (a Lua script, atomic on the primary) and set adds go to
the primary; reads go to the member this client is bound to, a replica for most
clients. Redis replication is asynchronous, so replica reads may be stale: that
is Redis's design, and what quorate should see.
"""
import json
import socket
import sys

TIMEOUT = 2.0  # below quorate's default op timeout (2.5 s)
CAS = """
local cur = redis.call('GET', KEYS[1])
if (ARGV[1] == '' and cur == false) or cur == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2]) return 1
end
return 0
"""


class NotSent(Exception):
    """The command never left: the store certainly did not apply it."""


class Conn:
    def __init__(self, addr):
        host, port = addr.rsplit(":", 1)
        self.addr, self.sock, self.buf = (host, int(port)), None, b""

    def command(self, *args):
        if self.sock is None:
            try:
                self.sock = socket.create_connection(self.addr, timeout=TIMEOUT)
            except OSError as e:
                raise NotSent(f"connect: {e}")
            self.buf = b""
        out = b"*%d\r\n" % len(args)
        for a in args:
            a = str(a).encode()
            out += b"$%d\r\n%s\r\n" % (len(a), a)
        try:
            self.sock.sendall(out)
            return self.reply()
        except OSError:
            self.sock.close()
            self.sock = None
            raise

    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise OSError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def reply(self):
        line = self.line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RuntimeError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise OSError("connection closed")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise OSError(f"unexpected reply {line!r}")


bound, primary = Conn(sys.argv[1]), Conn(sys.argv[2])


def handle(req):
    f, key = req["f"], req["key"]
    if f == "write":
        primary.command("SET", key, json.dumps(req["value"]))
        return {"type": "ok"}
    if f == "cas":
        expected, new = req["value"]
        old = "" if expected is None else json.dumps(expected)
        done = primary.command("EVAL", CAS, 1, key, old, json.dumps(new))
        return {"type": "ok"} if done == 1 else {"type": "fail", "error": "mismatch"}
    if f == "add":
        primary.command("SADD", key, json.dumps(req["value"]))
        return {"type": "ok"}
    if f == "read" and "elements" in req:  # Redis lists a set: elements not needed
        return {"type": "ok", "value": [json.loads(m) for m in bound.command("SMEMBERS", key)]}
    if f == "read":
        value = bound.command("GET", key)
        return {"type": "ok", "value": None if value is None else json.loads(value)}
    return {"type": "fail", "error": f"unknown op {f}"}


for line in sys.stdin:
    req = json.loads(line)
    try:
        answer = handle(req)
    except NotSent as e:
        answer = {"type": "fail", "error": str(e)}
    except RuntimeError as e:  # an error reply: Redis did not run the command
        answer = {"type": "fail", "error": str(e)}
    except (OSError, ValueError) as e:
        answer = {"type": "info", "error": f"no answer: {e}"}
    answer["id"] = req["id"]
    print(json.dumps(answer), flush=True)
