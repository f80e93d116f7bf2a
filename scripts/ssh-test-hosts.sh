#!/usr/bin/env bash
# Stand-in "remote hosts" on this machine for trying `--backend ssh` (and for BENCHMARKS.md's
# ssh row): N network namespaces on a bridge, each running its own sshd on its own address,
# with host and client keys made in DIR, and DIR/hosts.toml naming them. Root only; nothing
# of the system's sshd is touched (each sshd has DIR's config, keys and pid file).
#
#   scripts/ssh-test-hosts.sh up 3 /tmp/qhosts     # prints the hosts file's path
#   quorate run --backend ssh --hosts /tmp/qhosts/hosts.toml --nodes 3 …
#   scripts/ssh-test-hosts.sh down /tmp/qhosts      # sshd stopped, namespaces and bridge gone
#
# Names: namespaces qsh-h<i>, bridge qshb0, veths qshv<i>; addresses 169.254.250.(10+i).
set -euo pipefail
cmd=${1:-}; 
case "$cmd" in
up)
  n=${2:?N}; dir=${3:?DIR}
  [ "$(id -u)" = 0 ] || { echo "ssh-test-hosts: needs root" >&2; exit 1; }
  mkdir -p "$dir/work"; dir=$(cd "$dir" && pwd)
  [ -f "$dir/host_key" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/host_key"
  [ -f "$dir/id" ] || ssh-keygen -q -t ed25519 -N '' -f "$dir/id"
  cp "$dir/id.pub" "$dir/authorized_keys"
  mkdir -p /run/sshd
  ip link add qshb0 type bridge
  ip addr add 169.254.250.1/24 dev qshb0
  ip link set qshb0 up
  {
    echo "known_hosts = \"$dir/known_hosts\""
    printf '[defaults]\nuser = "root"\nidentity = "%s/id"\nwork_dir = "%s/work"\n' "$dir" "$dir"
  } > "$dir/hosts.toml"
  : > "$dir/known_hosts"
  for i in $(seq 1 "$n"); do
    ns=qsh-h$i; ip=169.254.250.$((10 + i))
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link add "qshv$i" type veth peer name eth0 netns "$ns"
    ip link set "qshv$i" master qshb0 up
    ip -n "$ns" addr add "$ip/24" dev eth0
    ip -n "$ns" link set eth0 up
    cat > "$dir/sshd-h$i.conf" <<CONF
ListenAddress $ip:22
HostKey $dir/host_key
AuthorizedKeysFile $dir/authorized_keys
PidFile $dir/sshd-h$i.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
MaxSessions 100
MaxStartups 100:30:200
CONF
    ip netns exec "$ns" /usr/sbin/sshd -f "$dir/sshd-h$i.conf"
    echo "$ip $(cut -d' ' -f1,2 "$dir/host_key.pub")" >> "$dir/known_hosts"
    printf '\n[[host]]\nname = "h%s"\naddress = "%s"\n' "$i" "$ip" >> "$dir/hosts.toml"
  done
  echo "$dir/hosts.toml"
  ;;
down)
  dir=${2:?DIR}
  for pidfile in "$dir"/sshd-h*.pid; do
    [ -f "$pidfile" ] && kill "$(cat "$pidfile")" 2>/dev/null || true
  done
  for ns in $(ip netns list | awk '/^qsh-h/ {print $1}'); do
    for p in $(ip netns pids "$ns"); do kill -9 "$p" 2>/dev/null || true; done
    ip netns delete "$ns"
  done
  ip link delete qshb0 2>/dev/null || true
  ;;
*)
  echo "usage: $0 up N DIR | down DIR" >&2; exit 2 ;;
esac
