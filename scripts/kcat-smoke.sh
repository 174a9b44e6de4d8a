#!/usr/bin/env bash
# Smoke test Chronik with the kcat that Debian ships (kcat 1.7.1 on Debian's
# librdkafka 2.0.2, which parses ApiVersions v3 strictly).
#
#   scripts/kcat-smoke.sh                      # start a broker, run the checks
#   scripts/kcat-smoke.sh --broker 127.0.0.1:9092   # test a running broker
#   --build-broker   run `cargo build -p chronik-server` even if the binary exists
#
# Checks: metadata (kcat -L), produce (kcat -P), consume (kcat -C -e),
# produce+consume per compression codec, keys, a group consumer (kcat -G) and
# that the group resumes from its committed offsets.
# Prints PASS/FAIL per check and a closing "N passed, N failed" line; exits
# non-zero if any check failed. Logs: target/kcat-smoke/<timestamp>/.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BROKER=""
BUILD_BROKER=0
KCAT_TIMEOUT=${KCAT_TIMEOUT:-30}
while [[ $# -gt 0 ]]; do
    case "$1" in
        --broker) BROKER=$2; shift 2 ;;
        --build-broker) BUILD_BROKER=1; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

log() { echo "# $*" >&2; }
die() { echo "error: $*" >&2; exit 2; }

# The main part is one brace group: bash parses it whole before running it,
# so editing this file during a run cannot break the run.
{
if ! command -v kcat >/dev/null; then
    log "installing Debian's kcat"
    SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq kcat >/dev/null ||
        die "apt-get install kcat failed"
fi

RUN_DIR=$ROOT/target/kcat-smoke/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN_DIR"
BROKER_PID=""
DATA_DIR=""
cleanup() {
    if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
        kill "$BROKER_PID" 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$BROKER_PID" 2>/dev/null
    fi
    [[ -n $DATA_DIR ]] && rm -rf "$DATA_DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

wait_port() { # host port seconds
    local i
    for ((i = 0; i < $3 * 4; i++)); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        [[ -n $BROKER_PID ]] && ! kill -0 "$BROKER_PID" 2>/dev/null && return 1
        sleep 0.25
    done
    return 1
}

if [[ -z $BROKER ]]; then
    BIN=$ROOT/target/debug/chronik-server
    if [[ $BUILD_BROKER -eq 1 || ! -x $BIN ]]; then
        log "building chronik-server (cargo build -p chronik-server)"
        (cd "$ROOT" && CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build -q -p chronik-server) ||
            die "cargo build -p chronik-server failed"
    fi
    PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    DATA_DIR=$(mktemp -d /tmp/chronik-kcat-XXXXXX)
    "$BIN" start --metrics-listen off --listen "127.0.0.1:$PORT" --data-dir "$DATA_DIR" >"$RUN_DIR/broker.log" 2>&1 &
    BROKER_PID=$!
    wait_port 127.0.0.1 "$PORT" 60 || { tail -20 "$RUN_DIR/broker.log" >&2; die "broker did not start"; }
    BROKER=127.0.0.1:$PORT
    log "chronik-server pid $BROKER_PID on $BROKER"
else
    wait_port "${BROKER%:*}" "${BROKER##*:}" 10 || die "broker $BROKER does not accept connections"
fi

PASSED=0
FAILED=0
pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1 ($2)"; FAILED=$((FAILED + 1)); }
# Last meaningful stderr line of a kcat run, for failure reasons.
why() {
    local l
    l=$(grep -E 'ERROR|FAIL|rror' "$1" 2>/dev/null | tail -1)
    [[ -n $l ]] || l=$(grep -v '^\s*$' "$1" 2>/dev/null | tail -1)
    echo "${l:0:300}"
}

kc() { # name args... : runs kcat with a timeout, stdout/stderr to RUN_DIR/name.{out,err}
    local name=$1 limit=$KCAT_TIMEOUT; shift
    [[ $name == group* ]] && limit=$((KCAT_TIMEOUT * 2))
    timeout -k 5 "$limit" kcat -b "$BROKER" "$@" >"$RUN_DIR/$name.out" 2>"$RUN_DIR/$name.err"
}

SUFFIX=$$_$RANDOM
TOPIC=kcat_smoke_$SUFFIX
EXPECTED=$(printf 'message-%d\n' 1 2 3 4 5)

# 1. metadata: the broker lists itself.
if kc metadata -L -m 10; then
    if grep -Eq '^ *1 brokers:' "$RUN_DIR/metadata.out" &&
       grep -Fq "at ${BROKER}" "$RUN_DIR/metadata.out"; then
        pass metadata
    else
        fail metadata "kcat -L does not list exactly one broker at $BROKER: $(tr '\n' ' ' <"$RUN_DIR/metadata.out" | cut -c1-200)"
    fi
else
    fail metadata "kcat -L exit $?: $(why "$RUN_DIR/metadata.err")"
fi

# 2. produce: 5 messages to a new topic (auto-created by the broker).
if printf '%s\n' "$EXPECTED" | kc produce -P -t "$TOPIC" -X message.timeout.ms=20000; then
    if grep -qiE 'error|fail' "$RUN_DIR/produce.err"; then
        fail produce "$(why "$RUN_DIR/produce.err")"
    else
        pass produce
    fi
else
    fail produce "kcat -P exit $?: $(why "$RUN_DIR/produce.err")"
fi

# 3. metadata for the topic: it exists, with a leader.
if kc metadata-topic -L -t "$TOPIC" -m 10 &&
   grep -Eq "topic \"$TOPIC\" with [1-9][0-9]* partitions" "$RUN_DIR/metadata-topic.out" &&
   grep -Eq 'partition 0, leader [0-9]+' "$RUN_DIR/metadata-topic.out"; then
    pass metadata-topic
else
    fail metadata-topic "kcat -L -t $TOPIC: $(tr '\n' ' ' <"$RUN_DIR/metadata-topic.out" | cut -c1-200) $(why "$RUN_DIR/metadata-topic.err")"
fi

# 4. consume: read them back from the beginning, exit at end of partition.
if kc consume -C -t "$TOPIC" -o beginning -e -q; then
    if [[ $(sort "$RUN_DIR/consume.out") == "$(sort <<<"$EXPECTED")" ]]; then
        pass consume
    else
        fail consume "expected 5 messages, got $(wc -l <"$RUN_DIR/consume.out"): $(head -c 200 "$RUN_DIR/consume.out" | tr '\n' ' ')"
    fi
else
    fail consume "kcat -C exit $?: $(why "$RUN_DIR/consume.err")"
fi

# 5. keys, and offsets as the consumer sees them.
KTOPIC=kcat_smoke_keys_$SUFFIX
if printf 'k1:v1\nk2:v2\n' | kc produce-keys -P -t "$KTOPIC" -p 0 -K: &&
   kc consume-keys -C -t "$KTOPIC" -p 0 -o beginning -e -q -f '%o %k=%s\n' &&
   [[ $(cat "$RUN_DIR/consume-keys.out") == $'0 k1=v1\n1 k2=v2' ]]; then
    pass keys-offsets
else
    fail keys-offsets "expected '0 k1=v1 1 k2=v2', got '$(tr '\n' ' ' <"$RUN_DIR/consume-keys.out")' $(why "$RUN_DIR/produce-keys.err") $(why "$RUN_DIR/consume-keys.err")"
fi

# 6. compression codecs: produce compressed, read back.
for codec in gzip snappy lz4 zstd; do
    CT=kcat_smoke_${codec}_$SUFFIX
    if printf '%s\n' "$EXPECTED" | kc "produce-$codec" -P -t "$CT" -z "$codec" &&
       kc "consume-$codec" -C -t "$CT" -o beginning -e -q &&
       [[ $(sort "$RUN_DIR/consume-$codec.out") == "$(sort <<<"$EXPECTED")" ]]; then
        pass "compression-$codec"
    else
        fail "compression-$codec" "got $(wc -l <"$RUN_DIR/consume-$codec.out") of 5 messages; $(why "$RUN_DIR/produce-$codec.err") $(why "$RUN_DIR/consume-$codec.err")"
    fi
done

# 7. group consumer: kcat -G joins a group, gets the partition, reads all.
GROUP=kcat_smoke_group_$SUFFIX
# A short session timeout bounds the wait for a member that did not leave.
GOPTS=(-X auto.offset.reset=earliest -X session.timeout.ms=10000)
if kc group -G "$GROUP" "$TOPIC" "${GOPTS[@]}" -e; then
    if [[ $(sort "$RUN_DIR/group.out") == "$(sort <<<"$EXPECTED")" ]]; then
        pass group-consumer
    else
        fail group-consumer "expected 5 messages, got $(wc -l <"$RUN_DIR/group.out"): $(why "$RUN_DIR/group.err")"
    fi
else
    fail group-consumer "kcat -G exit $?: $(why "$RUN_DIR/group.err")"
fi

# 8. the group committed its offsets: a new member resumes after message 5.
printf 'message-6\n' | kc produce-more -P -t "$TOPIC" >/dev/null
if kc group-resume -G "$GROUP" "$TOPIC" "${GOPTS[@]}" -e; then
    if [[ $(cat "$RUN_DIR/group-resume.out") == "message-6" ]]; then
        pass group-commit-resume
    else
        fail group-commit-resume "expected only message-6 after rejoining, got $(wc -l <"$RUN_DIR/group-resume.out") messages: $(head -c 120 "$RUN_DIR/group-resume.out" | tr '\n' ' ')"
    fi
else
    fail group-commit-resume "kcat -G exit $?: $(why "$RUN_DIR/group-resume.err")"
fi

log "logs: $RUN_DIR"
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
exit $?
}
