#!/usr/bin/env python3
"""quorate adapter for etcd (v3 JSON gateway, etcd 3.4+), standard library only.

Usage: etcd.py HOST:PORT [serializable]   (the member this client is bound to)

The gateway's traps: keys and values are base64; proto3 JSON leaves out fields
that are false, zero or empty ("succeeded", "kvs"); a cas from "no value"
compares create_revision == 0. Values are stored as JSON text.
"""
import base64
import json
import sys
import urllib.error
import urllib.request

URL = "http://" + sys.argv[1]
SERIALIZABLE = len(sys.argv) > 2 and sys.argv[2] == "serializable"
TIMEOUT = 2.0  # below quorate's default op timeout (2.5 s)
# No proxy from the environment: the member is on loopback or in a test's namespace.
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def b64(text):
    return base64.b64encode(text.encode()).decode()


def unb64(text):
    return base64.b64decode(text).decode()


def post(path, body):
    """The JSON answer; urllib's errors (no answer, an error status) propagate."""
    req = urllib.request.Request(URL + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with opener.open(req, timeout=TIMEOUT) as resp:
        return json.loads(resp.read())


def prefix_end(prefix):
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def handle(req):
    f, key = req["f"], req["key"]
    if f == "write":
        post("/v3/kv/put", {"key": b64(key), "value": b64(json.dumps(req["value"]))})
        return {"type": "ok"}
    if f == "add":  # the set workload: each element under the set's prefix
        element = f"{key}/{req['value']}"
        post("/v3/kv/put", {"key": b64(element), "value": b64(json.dumps(req["value"]))})
        return {"type": "ok"}
    if f == "read" and "elements" in req:  # a set read: etcd can list the prefix
        prefix = key + "/"
        got = post("/v3/kv/range", {"key": b64(prefix), "range_end": b64(prefix_end(prefix)),
                                    "serializable": SERIALIZABLE})
        return {"type": "ok", "value": [json.loads(unb64(kv["value"])) for kv in got.get("kvs", [])]}
    if f == "read":
        got = post("/v3/kv/range", {"key": b64(key), "serializable": SERIALIZABLE})
        kvs = got.get("kvs", [])
        return {"type": "ok", "value": json.loads(unb64(kvs[0]["value"])) if kvs else None}
    if f == "cas":
        expected, new = req["value"]
        if expected is None:
            compare = {"key": b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
        else:
            compare = {"key": b64(key), "target": "VALUE", "result": "EQUAL",
                       "value": b64(json.dumps(expected))}
        got = post("/v3/kv/txn", {"compare": [compare], "success": [
            {"request_put": {"key": b64(key), "value": b64(json.dumps(new))}}]})
        return {"type": "ok"} if got.get("succeeded") else {"type": "fail", "error": "mismatch"}
    return {"type": "fail", "error": f"unknown op {f}"}


for line in sys.stdin:
    req = json.loads(line)
    try:
        answer = handle(req)
    except urllib.error.HTTPError as e:
        # The gateway answered with an error: a read changed nothing; a write may have.
        kind = "fail" if req["f"] == "read" else "info"
        answer = {"type": kind, "error": f"{e.code} {e.read()[:200]!r}"}
    except (OSError, ValueError) as e:
        answer = {"type": "info", "error": f"no answer: {e}"}
    answer["id"] = req["id"]
    print(json.dumps(answer), flush=True)
