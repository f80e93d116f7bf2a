#!/usr/bin/env python3
"""quorate adapter for the reference node (quorate-node's HTTP API).

Usage: node.py HOST:PORT   (the member this client is bound to)

One JSON request per line on stdin, one JSON answer per line on stdout
(docs/INTERFACES.md, "The adapter protocol"). Outcomes follow the same rules
as quorate's built-in node client: 2xx ok, 404 read = no value, 409 cas =
mismatch (fail), 503 with may_have_applied false = fail, other 4xx = fail,
anything else (timeouts, broken connections, 5xx) = info.
"""
import http.client
import json
import sys
import urllib.parse

ADDR = sys.argv[1]
TIMEOUT = 2.0  # below quorate's default op timeout (2.5 s)
conn = None


def call(method, key, body=None, suffix=""):
    """(status, JSON body or None); raises OSError when there is no answer."""
    global conn
    if conn is None:
        conn = http.client.HTTPConnection(ADDR, timeout=TIMEOUT)
    path = "/kv/" + urllib.parse.quote(key, safe="") + suffix
    data = None if body is None else json.dumps(body)
    try:
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException):
        conn.close()
        conn = None
        raise OSError("timeout or broken connection")
    try:
        return resp.status, json.loads(raw) if raw else None
    except ValueError:
        return resp.status, None


def outcome(f, status, body):
    body = body if isinstance(body, dict) else {}
    if f == "read" and status == 200:
        return {"type": "ok", "value": body.get("value")}
    if f == "read" and status == 404:
        return {"type": "ok", "value": None}
    if 200 <= status < 300:
        return {"type": "ok"}
    if f == "cas" and status == 409:
        return {"type": "fail", "error": "mismatch"}
    error = f"{status} {body.get('error', '')}".strip()
    if status == 503:
        surely_not = body.get("may_have_applied") is False
        return {"type": "fail" if surely_not else "info", "error": error}
    if 400 <= status < 500:
        return {"type": "fail", "error": error}
    return {"type": "info", "error": error}


def register(req):
    f, key = req["f"], req["key"]
    if f == "read":
        return outcome(f, *call("GET", key))
    if f == "write":
        return outcome(f, *call("PUT", key, {"value": req["value"]}))
    expected, new = req["value"]
    return outcome(f, *call("POST", key, {"expected": expected, "new": new}, "/cas"))


def handle(req):
    f, key = req["f"], req["key"]
    try:
        if f == "add":  # the set workload: each element under a key of its own
            return outcome("write", *call("PUT", f"{key}/{req['value']}", {"value": req["value"]}))
        if f == "read" and "elements" in req:  # a set read: read every element added so far
            found = []
            for e in req["elements"]:
                answer = outcome("read", *call("GET", f"{key}/{e}"))
                if answer["type"] != "ok":
                    return answer
                if answer["value"] is not None:
                    found.append(answer["value"])
            return {"type": "ok", "value": found}
        return register(req)
    except OSError as e:
        return {"type": "info", "error": str(e)}


for line in sys.stdin:
    req = json.loads(line)
    answer = handle(req)
    answer["id"] = req["id"]
    print(json.dumps(answer), flush=True)
