#!/usr/bin/env bash
# A single-node Slurm cluster, with accounting (slurmdbd + a private MariaDB), built from
# Debian's packages: for the tests and for trying `--profile profiles/slurm` on one machine.
#
#   apt-get install -y slurm-wlm munge mariadb-server slurmdbd   # once, as root
#   scripts/slurm-local.sh start     # idempotent; prints the SLURM_CONF export to use
#   eval "$(scripts/slurm-local.sh env)"
#   scripts/slurm-local.sh status    # exit 0 when its Slurm daemons are running
#   scripts/slurm-local.sh stop      # ends only the daemons this script started
#
# Everything (configs, PID files, logs, Slurm state, the MariaDB data directory) lives under
# $OTFLOWS_SLURM_DIR (default /tmp/otflows-slurm). The one thing outside it is a symlink
# /etc/slurm/slurm.conf -> that directory's slurm.conf, created only where no slurm.conf
# exists and removed by `stop`: the executor plugin strips SLURM_* variables (SLURM_CONF
# included) before the `srun` inside each job, which then reads the default path, as on a
# real cluster. munged is reused when one already answers on /run/munge; otherwise it is
# started as the munge user and recorded as ours. `stop` ends daemons by the PIDs recorded
# under $OTFLOWS_SLURM_DIR/pids, never by name.
set -euo pipefail

DIR=${OTFLOWS_SLURM_DIR:-/tmp/otflows-slurm}
CONF=$DIR/etc/slurm.conf
PIDS=$DIR/pids
LOGS=$DIR/log
CLUSTER=otflows
PARTITION=${OTFLOWS_SLURM_PARTITION:-debug}
ACCOUNT=${OTFLOWS_SLURM_ACCOUNT:-otflows}
DB_PORT=${OTFLOWS_SLURM_DB_PORT:-16820}
CTLD_PORT=${OTFLOWS_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${OTFLOWS_SLURM_SLURMD_PORT:-6818}
DBD_PORT=${OTFLOWS_SLURM_DBD_PORT:-6819}
DB_PASS=otflows-local      # a throw-away MariaDB bound to 127.0.0.1 only
PACKAGES="slurm-wlm munge mariadb-server slurmdbd"

export SLURM_CONF=$CONF

die() { echo "slurm-local: $*" >&2; exit 1; }
say() { echo "slurm-local: $*" >&2; }

# PID recorded in $PIDS/<name>.pid when that process is alive and is still <binary>.
recorded_pid() {
  local name=$1 binary=$2 pid
  [ -s "$PIDS/$name.pid" ] || return 1
  pid=$(tr -dc '0-9' < "$PIDS/$name.pid")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q -- "$binary" || return 1
  echo "$pid"
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND until it succeeds.
wait_for() {
  local seconds=$1 what=$2 i
  shift 2
  for ((i = 0; i < seconds * 4; i++)); do
    if "$@" > /dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  die "$what did not come up within ${seconds}s; logs: $LOGS"
}

check_prerequisites() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (daemons, /run/munge, the munge user)"
  local missing=""
  for bin in munged slurmctld slurmd slurmdbd sacctmgr mariadbd mariadb-install-db; do
    command -v "$bin" > /dev/null || missing="$missing $bin"
  done
  [ -z "$missing" ] || die "missing:$missing; run: apt-get install -y $PACKAGES"
}

write_configs() {
  mkdir -p "$DIR/etc" "$PIDS" "$LOGS" "$DIR/state" "$DIR/spool" "$DIR/run"
  chmod 755 "$DIR"
  local host node
  host=$(hostname -s)
  # What this machine has (CPUs, sockets, cores, threads, RealMemory), as slurmd sees it.
  node=$(slurmd -C | head -1 | sed 's/^NodeName=[^ ]* //')
  [ -f "$CONF" ] || cat > "$CONF" <<EOF
# Written by scripts/slurm-local.sh: a single-node cluster for tests.
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$PIDS/slurmctld.pid
SlurmdPidFile=$PIDS/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
# No cgroups: plain /proc process tracking, no task binding, no cgroup.conf.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
# Accounting through slurmdbd, so that sacct answers for finished jobs.
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=$DBD_PORT
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MinJobAge=300
NodeName=$host NodeAddr=127.0.0.1 $node State=UNKNOWN
# DefMemPerCPU: without it a job that asks for no memory takes the whole node.
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP DefMemPerCPU=500
EOF
  if [ ! -f "$DIR/etc/slurmdbd.conf" ]; then
    cat > "$DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
LogFile=$LOGS/slurmdbd.log
PidFile=$PIDS/slurmdbd.pid
EOF
    chmod 600 "$DIR/etc/slurmdbd.conf"   # slurmdbd refuses a readable one
  fi
}

SYSTEM_CONF=/etc/slurm/slurm.conf

link_system_conf() {
  if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; then return 0; fi
  [ ! -e "$SYSTEM_CONF" ] && [ ! -L "$SYSTEM_CONF" ] \
    || die "$SYSTEM_CONF exists and is not ours: this machine has a Slurm configuration already"
  mkdir -p "$(dirname "$SYSTEM_CONF")"
  ln -s "$CONF" "$SYSTEM_CONF"
}

unlink_system_conf() {
  if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; then
    rm -f "$SYSTEM_CONF"
  fi
}

munge_works() { munge -n < /dev/null 2> /dev/null | unmunge > /dev/null 2>&1; }

start_munge() {
  if munge_works; then return 0; fi   # someone's munged answers: use it, never stop it
  if [ ! -s /etc/munge/munge.key ]; then
    mungekey --create --keyfile=/etc/munge/munge.key
    chown munge:munge /etc/munge/munge.key
    chmod 400 /etc/munge/munge.key
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 755 /run/munge
  runuser -u munge -- munged --pid-file=/run/munge/otflows-munged.pid
  wait_for 10 munged munge_works
  cp /run/munge/otflows-munged.pid "$PIDS/munged.pid"
}

db_sql() { mariadb --no-defaults --socket="$DIR/run/mysqld.sock" -uroot -e "$1"; }

start_mariadb() {
  if ! recorded_pid mariadbd mariadbd > /dev/null; then
    if [ ! -d "$DIR/mysql/mysql" ]; then
      mariadb-install-db --no-defaults --user=mysql --datadir="$DIR/mysql" \
        --auth-root-authentication-method=socket --skip-test-db > "$LOGS/mariadb-install.log" 2>&1 \
        || die "mariadb-install-db failed; see $LOGS/mariadb-install.log"
    fi
    chown -R mysql:mysql "$DIR/mysql" "$DIR/run"
    setsid mariadbd --no-defaults --user=mysql --datadir="$DIR/mysql" \
      --socket="$DIR/run/mysqld.sock" --pid-file="$DIR/run/mariadbd.pid" \
      --bind-address=127.0.0.1 --port="$DB_PORT" --skip-name-resolve \
      --innodb-use-native-aio=0 --innodb-buffer-pool-size=64M \
      --log-error="$LOGS/mariadb.log" < /dev/null > /dev/null 2>&1 &
    echo $! > "$PIDS/mariadbd.pid"
    wait_for 60 MariaDB db_sql "SELECT 1"
  fi
  # The one statement slurmdbd needs: its user and database.
  db_sql "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS'"
}

start_slurmdbd() {
  recorded_pid slurmdbd slurmdbd > /dev/null && return 0
  slurmdbd
  wait_for 60 slurmdbd sacctmgr -n show cluster
}

add_associations() {
  sacctmgr -n -P show cluster format=cluster | grep -qx "$CLUSTER" \
    || sacctmgr -i add cluster "$CLUSTER" > /dev/null
  sacctmgr -n -P show account format=account | grep -qx "$ACCOUNT" \
    || sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=otflows \
         Organization=otflows > /dev/null
  local user
  for user in root ${SUDO_USER:-}; do
    sacctmgr -n -P show assoc user="$user" account="$ACCOUNT" format=user | grep -qx "$user" \
      || sacctmgr -i add user "$user" Account="$ACCOUNT" Cluster="$CLUSTER" > /dev/null
  done
}

node_ready() { sinfo -h -o %T | grep -Eq '^(idle|mixed|allocated)'; }

start_slurm() {
  recorded_pid slurmctld slurmctld > /dev/null || slurmctld
  wait_for 30 slurmctld scontrol ping
  recorded_pid slurmd slurmd > /dev/null || slurmd
  wait_for 60 "slurmd (node idle)" node_ready
}

stop_one() {
  local name=$1 binary=$2 pid i
  if pid=$(recorded_pid "$name" "$binary"); then
    kill -TERM "$pid" 2> /dev/null || true
    for ((i = 0; i < 60; i++)); do
      [ -d "/proc/$pid" ] || break
      sleep 0.25
    done
    if [ -d "/proc/$pid" ]; then kill -KILL "$pid" 2> /dev/null || true; fi
    say "stopped $name ($pid)"
  fi
  rm -f "$PIDS/$name.pid"
}

case "${1:-}" in
  start)
    check_prerequisites
    write_configs
    link_system_conf
    start_munge
    start_mariadb
    start_slurmdbd
    add_associations
    start_slurm
    say "up: partition $PARTITION, account $ACCOUNT, state in $DIR"
    echo "export SLURM_CONF=$CONF"
    ;;
  stop)
    [ -d "$PIDS" ] || exit 0
    if recorded_pid slurmctld slurmctld > /dev/null; then
      scancel --partition="$PARTITION" 2> /dev/null || true   # jobs of this cluster only
    fi
    stop_one slurmd slurmd
    stop_one slurmctld slurmctld
    stop_one slurmdbd slurmdbd
    stop_one mariadbd mariadbd
    stop_one munged munged
    unlink_system_conf
    ;;
  status)   # exit 0 when the Slurm daemons this script started are all running
    for name in slurmdbd slurmctld slurmd; do
      recorded_pid "$name" "$name" > /dev/null || { echo "$name: not running"; exit 1; }
    done
    echo "running (state in $DIR)"
    ;;
  env)
    echo "export SLURM_CONF=$CONF"
    ;;
  *)
    echo "usage: $0 start|stop|status|env" >&2
    exit 2
    ;;
esac
