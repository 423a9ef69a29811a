#!/usr/bin/env bash
# A single-node Slurm cluster with real job accounting (slurmdbd + MariaDB), for testing the submitit
# executor. Debian 12, root, no systemd: the daemons are started by hand from a temporary directory.
#
#   eval "$(tests/slurm/cluster.sh start)"   # install if needed, start, print 'export SLURM_CONF=...'
#   tests/slurm/cluster.sh status            # partitions, node state, queue
#   tests/slurm/cluster.sh stop              # cancel jobs, end exactly the daemons started, remove files
#
# Partitions: 'debug' (default; its jobs can be preempted and are requeued, with a user signal first),
# 'urgent' (a higher priority tier: its jobs preempt 'debug' jobs) and 'steady' (never preempted).
# Requeued jobs may start again after 5 s (cred_expire), and cancelled ones are killed 5 s after
# SIGTERM (KillWait). Ports are the first free set from 6817 upwards, the MariaDB port likewise from
# 3306. Everything lives in one mktemp directory, recorded in $INTROZOO_SLURM_STATE (default
# /tmp/introzoo-slurm.dir) so that 'stop' finds it; the daemons run as root, munged as user munge.
set -euo pipefail

STATE=${INTROZOO_SLURM_STATE:-/tmp/introzoo-slurm.dir}
log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll every 0.1 s until COMMAND succeeds
  local limit=$1 what=$2 i; shift 2
  for ((i = 0; i < limit * 10; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  die "$what not ready after ${limit} s (logs in $D/log)"
}

record() {  # record NAME PIDFILE: wait for a daemon's pid file, note the pid for 'stop'
  wait_for 10 "$1's pid file" test -s "$2"
  echo "$1 $(cat "$2")" >>"$D/pids"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

install_packages() {
  local need=()
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null || need+=(slurm-wlm)
  command -v munged >/dev/null || need+=(munge)
  command -v slurmdbd >/dev/null || need+=(slurmdbd)
  command -v mariadbd >/dev/null || need+=(mariadb-server)
  [ ${#need[@]} -eq 0 ] && return 0
  [ "$(id -u)" -eq 0 ] || die "installing ${need[*]} needs root"
  log "installing ${need[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null 2>&1 \
    || die "apt-get install ${need[*]} failed"
}

start() {
  [ "$(id -u)" -eq 0 ] || die "start needs root (the daemons run as root, munged as user munge)"
  if [ -f "$STATE" ] && [ -d "$(cat "$STATE")" ]; then
    die "a cluster is already recorded in $STATE ($(cat "$STATE")); run '$0 stop' first"
  fi
  local t0=$SECONDS
  install_packages
  D=$(mktemp -d /tmp/introzoo-slurm.XXXXXX)
  chmod 755 "$D"
  echo "$D" >"$STATE"
  trap 'log "start failed; stopping what was started"; show_logs; stop' EXIT
  mkdir -p "$D"/{state,spool,log,run,etc,mysql}
  install -d -o munge -g munge -m 0755 "$D/munge"  # munged: socket dir must be searchable by all

  # ports: controller, node daemon, accounting daemon, database
  local base=6817 db=3306
  while ! { port_free $base && port_free $((base + 1)) && port_free $((base + 2)); }; do base=$((base + 10)); done
  while ! port_free $db; do db=$((db + 1)); done

  # hardware as slurmd sees it (RealMemory must not exceed what it measures)
  local hw cpus sockets cores threads mem
  hw=$(slurmd -C | head -1)
  field() { sed -n "s/.*\b$1=\([0-9]*\).*/\1/p" <<<"$hw"; }
  cpus=$(field CPUs); sockets=$(field SocketsPerBoard); cores=$(field CoresPerSocket)
  threads=$(field ThreadsPerCore); mem=$(field RealMemory)

  local pass
  pass=$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
  cat >"$D/etc/slurm.conf" <<EOF
ClusterName=introzoo
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket,cred_expire=5
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldPort=$base
SlurmdPort=$((base + 1))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$((base + 2))
AccountingStoragePass=$D/munge/munge.socket
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=2
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
SlurmctldParameters=preempt_send_user_signal
KillWait=5
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
NodeName=localhost CPUs=$cpus Sockets=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=30
PartitionName=urgent Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
PartitionName=steady Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=OFF
EOF
  cat >"$D/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$D/munge/munge.socket,cred_expire=5
DbdHost=localhost
DbdPort=$((base + 2))
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
PidFile=$D/run/slurmdbd.pid
LogFile=$D/log/slurmdbd.log
EOF
  chmod 600 "$D/etc/slurmdbd.conf"
  export SLURM_CONF=$D/etc/slurm.conf

  # 1. munged, as user munge, with its own key and socket
  dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 status=none
  chown munge:munge "$D/munge/munge.key"; chmod 600 "$D/munge/munge.key"
  runuser -u munge -- /usr/sbin/munged --socket="$D/munge/munge.socket" --key-file="$D/munge/munge.key" \
    --pid-file="$D/munge/munged.pid" --log-file="$D/munge/munged.log" --seed-file="$D/munge/munged.seed"
  record munged "$D/munge/munged.pid"
  wait_for 10 munged test -S "$D/munge/munge.socket"

  # 2. MariaDB for slurmdbd
  mariadb-install-db --no-defaults --user=root --datadir="$D/mysql" --skip-test-db \
    >"$D/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed (see $D/log/mariadb-install.log)"
  setsid /usr/sbin/mariadbd --no-defaults --user=root --datadir="$D/mysql" --socket="$D/run/mysqld.sock" \
    --pid-file="$D/run/mysqld.pid" --port=$db --bind-address=127.0.0.1 --skip-log-bin \
    --innodb-buffer-pool-size=64M --log-error="$D/log/mariadb.log" </dev/null >/dev/null 2>&1 &
  echo "mariadbd $!" >>"$D/pids"
  wait_for 30 mariadbd mariadb-admin --no-defaults --socket="$D/run/mysqld.sock" ping
  mariadb --no-defaults --socket="$D/run/mysqld.sock" -u root <<EOF
CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
CREATE USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
EOF

  # 3. slurmdbd, 4. slurmctld, 5. slurmd: each daemonizes; its pid is recorded as soon as it is known
  /usr/sbin/slurmdbd
  record slurmdbd "$D/run/slurmdbd.pid"
  wait_for 30 slurmdbd bash -c "exec 3<>/dev/tcp/127.0.0.1/$((base + 2))"
  /usr/sbin/slurmctld
  record slurmctld "$D/run/slurmctld.pid"
  wait_for 30 slurmctld scontrol ping
  /usr/sbin/slurmd -N localhost
  record slurmd "$D/run/slurmd.pid"
  wait_for 30 "the node" bash -c '[ "$(sinfo -h -n localhost -o %T | head -1)" = idle ]'
  wait_for 30 accounting bash -c 'sacctmgr -n -P list cluster format=cluster | grep -qx introzoo'
  trap - EXIT
  log "cluster up in $((SECONDS - t0)) s: $D (partitions debug, urgent, steady; $cpus CPUs)"
  echo "export SLURM_CONF=$D/etc/slurm.conf"
}

show_logs() {  # the end of every log, for a failed start
  local f
  for f in "$D"/log/*.log "$D"/munge/*.log; do
    [ -f "$f" ] && { echo "--- $f" >&2; tail -n 15 "$f" >&2; }
  done
  return 0
}

pid_is() {  # pid_is PID NAME: the process is alive and runs /usr/sbin/NAME (links resolved)
  alive "$1" && [ "$(readlink "/proc/$1/exe" 2>/dev/null)" = "$(readlink -f "/usr/sbin/$2")" ]
}

stop_group() {  # stop_group NAME...: SIGTERM to each (if it is ours), wait up to 20 s, then SIGKILL
  local name i left=()
  for name in "$@"; do
    if [ -n "${pids[$name]:-}" ] && pid_is "${pids[$name]}" "$name"; then
      kill "${pids[$name]}" 2>/dev/null || true
      left+=("$name")
    fi
  done
  for ((i = 0; i < 200; i++)); do
    local still=()
    for name in "${left[@]}"; do alive "${pids[$name]}" && still+=("$name"); done
    left=("${still[@]}")
    [ ${#left[@]} -eq 0 ] && return 0
    sleep 0.1
  done
  for name in "${left[@]}"; do
    log "$name (${pids[$name]}) ignored SIGTERM; killing it"
    kill -9 "${pids[$name]}" 2>/dev/null || true
  done
}

stop() {
  [ -f "$STATE" ] || { log "no cluster recorded in $STATE; nothing to stop"; return 0; }
  D=$(cat "$STATE")
  [ -d "$D" ] || { log "$D is gone; nothing to stop"; rm -f "$STATE"; return 0; }
  local t0=$SECONDS
  export SLURM_CONF=$D/etc/slurm.conf
  declare -A pids=()
  if [ -f "$D/pids" ]; then
    while read -r name pid; do pids[$name]=$pid; done <"$D/pids"
  fi
  # jobs first, so that no job step outlives the node daemon
  if pid_is "${pids[slurmctld]:-}" slurmctld; then
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ')
    if [ -n "${jobs// }" ]; then
      # shellcheck disable=SC2086
      scancel --full $jobs 2>/dev/null || true
      for ((i = 0; i < 200; i++)); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.1; done
    fi
  fi
  # all at once: each takes 2-4 s to shut down, and nothing of this cluster needs to outlive it
  stop_group slurmd slurmctld slurmdbd mariadbd munged
  # what survived: job processes (this cluster's SLURM_CONF and a SLURM_JOB_ID in their environment)
  # and daemons started with this cluster's SLURM_CONF (a job step daemon, or one whose pid was lost)
  local p env exe ours=()
  for name in slurmd slurmctld slurmdbd slurmstepd mariadbd munged; do ours+=("$(readlink -f "/usr/sbin/$name")"); done
  for p in /proc/[0-9]*; do
    env=$({ tr '\0' '\n' <"$p/environ"; } 2>/dev/null) || continue
    grep -qx "SLURM_CONF=$SLURM_CONF" <<<"$env" || continue
    exe=$(readlink "$p/exe" 2>/dev/null) || continue
    if grep -q '^SLURM_JOB_ID=' <<<"$env" || printf '%s\n' "${ours[@]}" | grep -qx "$exe"; then
      log "ending leftover process ${p#/proc/} ($exe)"
      kill -9 "${p#/proc/}" 2>/dev/null || true
    fi
  done
  rm -rf "$D"
  rm -f "$STATE"
  log "cluster stopped in $((SECONDS - t0)) s"
}

status() {
  [ -f "$STATE" ] || die "no cluster recorded in $STATE"
  D=$(cat "$STATE")
  export SLURM_CONF=$D/etc/slurm.conf
  echo "SLURM_CONF=$SLURM_CONF"
  cat "$D/pids"
  sinfo
  squeue
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status   (eval \"\$($0 start)\" exports SLURM_CONF)" >&2; exit 2 ;;
esac
