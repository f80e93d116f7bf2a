#!/usr/bin/env python3
"""Set-up of examples/targets/garage.toml: join the members, lay them out, import the key and
make the bucket that the file's [client.s3] names, through Garage 2.x's admin API (v2).

    garage_setup.py ADMIN_ADDRS RPC_ADDRS TOKEN ACCESS_KEY SECRET_KEY BUCKET PEERS_FILE

ADMIN_ADDRS and RPC_ADDRS are comma lists of host:port, member by member ({members.admin},
{members.rpc}). PEERS_FILE gets every member as `"<node id>@<rpc address>"`, comma-separated,
for a restarted member's bootstrap_peers. Every wait is bounded; any failure exits 1 saying which step and member.
"""
import json
import sys
import time
import urllib.error
import urllib.request

DEADLINE = time.monotonic() + 50


def call(addr, token, path, body=None):
    req = urllib.request.Request(
        f"http://{addr}{path}",
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="GET" if body is None else "POST",
    )
    with urllib.request.urlopen(req, timeout=5) as r:
        return json.loads(r.read() or b"null")


def until(what, step):
    """Retry `step` (None: not yet) until it gives a value, bounded by DEADLINE."""
    last = None
    while time.monotonic() < DEADLINE:
        try:
            v = step()
            if v is not None:
                return v
        except (OSError, urllib.error.URLError, ValueError, KeyError) as e:
            last = e
        time.sleep(0.2)
    sys.exit(f"garage_setup: {what}: not done within the deadline (last error: {last})")


def main():
    if len(sys.argv) != 8:
        sys.exit(__doc__)
    admins, rpcs = sys.argv[1].split(","), sys.argv[2].split(",")
    token, access, secret, bucket, peers_file = sys.argv[3:8]
    if len(admins) != len(rpcs):
        sys.exit(f"garage_setup: {len(admins)} admin addresses but {len(rpcs)} rpc addresses")
    first = admins[0]

    def own_id(addr):
        ok = call(addr, token, "/v2/GetNodeInfo?node=self")["success"]
        return next(iter(ok)) if ok else None

    ids = [until(f"node id of {a}", lambda a=a: own_id(a)) for a in admins]
    every = [f"{i}@{r}" for i, r in zip(ids, rpcs)]
    with open(peers_file, "w") as f:
        f.write(", ".join(f'"{p}"' for p in every) + "\n")
    peers = every[1:]

    def connected():
        answers = call(first, token, "/v2/ConnectClusterNodes", peers)
        return True if all(a.get("success") for a in answers) else None

    until("connecting the members", connected)

    def all_up(addr):
        nodes = call(addr, token, "/v2/GetClusterStatus")["nodes"]
        up = {n["id"] for n in nodes if n.get("isUp")}
        return True if set(ids) <= up else None

    for a in admins:
        until(f"{a} seeing every member up", lambda a=a: all_up(a))
    roles = [{"id": i, "zone": "dc1", "capacity": 1_000_000_000, "tags": []} for i in ids]
    layout = call(first, token, "/v2/UpdateClusterLayout", {"roles": roles})
    call(first, token, "/v2/ApplyClusterLayout", {"version": layout["version"] + 1})

    def healthy(addr):
        h = call(addr, token, "/v2/GetClusterHealth")
        return True if h.get("status") == "healthy" else None

    for a in admins:
        until(f"{a} healthy", lambda a=a: healthy(a))
    call(first, token, "/v2/ImportKey",
         {"accessKeyId": access, "secretAccessKey": secret, "name": "quorate"})
    b = call(first, token, "/v2/CreateBucket", {"globalAlias": bucket})
    call(first, token, "/v2/AllowBucketKey", {
        "bucketId": b["id"], "accessKeyId": access,
        "permissions": {"read": True, "write": True, "owner": True}})
    print(f"garage_setup: {len(ids)} members laid out, key {access} on bucket {bucket}")


if __name__ == "__main__":
    main()
