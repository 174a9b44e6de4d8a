#!/usr/bin/env bash
# Run librdkafka's own integration test suite (tests/ of the librdkafka source
# vendored in the rdkafka-sys crate) against a freshly started Chronik broker.
#
#   scripts/librdkafka-suite.sh                 # build (once), start broker, run all
#   scripts/librdkafka-suite.sh --tests 0001,0012
#   scripts/librdkafka-suite.sh --list          # print the plan, run nothing
#   scripts/librdkafka-suite.sh --build-only    # only install deps + build runner
#   scripts/librdkafka-suite.sh --broker 127.0.0.1:9092   # use a running broker
#
# Options (and env equivalents):
#   --tests LIST     comma list of test numbers (0001) or variant names
#   --timeout S      per test-number wall clock limit  [LIBRDKAFKA_TEST_TIMEOUT=120]
#   --budget S       whole-run limit; tests not started by then FAIL as "not run"
#                                                     [LIBRDKAFKA_SUITE_BUDGET=1500]
#   --jobs N         test numbers run concurrently    [LIBRDKAFKA_SUITE_JOBS=2]
#   --kafka-version V  broker version the suite assumes (TEST_KAFKA_VERSION)
#                                                     [LIBRDKAFKA_SUITE_KAFKA_VERSION=3.9.0]
#   --broker H:P     do not start a broker, test this one
#   LIBRDKAFKA_SUITE_SKIP_FILE  another skip list (/dev/null runs everything)
#
# A test number that fails runs once more (0097: twice more); a pass on a later attempt is
# reported as "PASS name (on attempt N; ...)" with the first attempt's log, so flakiness stays
# visible.
#   --build-broker   run `cargo build -p chronik-server` even if the binary exists
#
# Output: one line per test variant (PASS name / FAIL name (reason) /
# SKIP name (reason)) and a closing "N passed, N failed, N skipped" line.
# Exit status is non-zero if any test failed. Per-test logs, the broker log
# and results.txt are kept in target/librdkafka-suite/runs/<timestamp>/.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE_DIR=${LIBRDKAFKA_SUITE_DIR:-$ROOT/target/librdkafka-suite}
RDK=$SUITE_DIR/librdkafka
TESTS_DIR=$RDK/tests
SKIP_FILE=${LIBRDKAFKA_SUITE_SKIP_FILE:-$ROOT/tests/librdkafka/skip.txt}
CONF_TMPL=$ROOT/tests/librdkafka/test.conf.in

PER_TEST_TIMEOUT=${LIBRDKAFKA_TEST_TIMEOUT:-120}
# Test numbers that take longer than that by design: 0081 runs every admin API, several of
# them against request timeouts (about 200 s on two cores).
declare -A LONG_TEST_TIMEOUT=([0081]=480)
BUDGET=${LIBRDKAFKA_SUITE_BUDGET:-1500}
JOBS=${LIBRDKAFKA_SUITE_JOBS:-2}
KAFKA_VERSION=${LIBRDKAFKA_SUITE_KAFKA_VERSION:-3.9.0}
TIMEOUT_MULTIPLIER=${LIBRDKAFKA_SUITE_TIMEOUT_MULTIPLIER:-1.5}
MAKE_JOBS=${LIBRDKAFKA_SUITE_MAKE_JOBS:-2}
SELECT=""
LIST_ONLY=0
BUILD_ONLY=0
BROKER=""
BUILD_BROKER=0

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --tests) SELECT=$2; shift 2 ;;
        --tests=*) SELECT=${1#*=}; shift ;;
        --list) LIST_ONLY=1; shift ;;
        --build-only) BUILD_ONLY=1; shift ;;
        --timeout) PER_TEST_TIMEOUT=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;;
        --jobs) JOBS=$2; shift 2 ;;
        --kafka-version) KAFKA_VERSION=$2; shift 2 ;;
        --broker) BROKER=$2; shift 2 ;;
        --build-broker) BUILD_BROKER=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
    esac
done

log() { echo "# $*" >&2; }
die() { echo "error: $*" >&2; exit 2; }

# ---------------------------------------------------------------- packages
ensure_debs() {
    # rapidjson-dev: the tests verify stats JSON with it (0053_stats,
    # 0110_batch_size); without it they skip themselves.
    # openssl: the "ssl" scenario makes its certificates with it.
    local want=(build-essential pkg-config zlib1g-dev libssl-dev libsasl2-dev
                libzstd-dev liblz4-dev rapidjson-dev openssl)
    local missing=() p
    for p in "${want[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
            missing+=("$p")
    done
    # librdkafka's Makefile runs python3 (packaging/get_version.py).
    command -v python3 >/dev/null || missing+=(python3)
    [[ ${#missing[@]} -eq 0 ]] && return 0
    log "installing Debian packages: ${missing[*]}"
    local SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO=sudo
    $SUDO apt-get update -qq || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null ||
        die "apt-get install ${missing[*]} failed"
}

# ------------------------------------------------- librdkafka source + build
find_librdkafka_src() {
    local ver dir cargo_home=${CARGO_HOME:-$HOME/.cargo}
    ver=$(awk '/^name = "rdkafka-sys"$/ { getline; gsub(/"/, "", $3); print $3; exit }' \
              "$ROOT/Cargo.lock" 2>/dev/null)
    [[ -n $ver ]] || die "rdkafka-sys not found in Cargo.lock"
    dir=$(ls -d "$cargo_home"/registry/src/*/"rdkafka-sys-$ver"/librdkafka 2>/dev/null | head -1)
    if [[ -z $dir ]]; then
        log "rdkafka-sys $ver not in the cargo registry yet: cargo fetch"
        (cd "$ROOT" && cargo fetch -q) || die "cargo fetch failed"
        dir=$(ls -d "$cargo_home"/registry/src/*/"rdkafka-sys-$ver"/librdkafka 2>/dev/null | head -1)
    fi
    [[ -n $dir && -f $dir/tests/test.c ]] || die "librdkafka source of rdkafka-sys $ver not found"
    echo "$dir"
}

build_suite() {
    local src stamp t0
    src=$(find_librdkafka_src) || exit 2
    # Bump the recipe number when the build steps or packages change.
    stamp="$src recipe=2"
    if [[ -x $TESTS_DIR/test-runner && -e $RDK/src/librdkafka.so.1 &&
          -e $RDK/src-cpp/librdkafka++.so.1 &&
          "$(cat "$SUITE_DIR/.built-from" 2>/dev/null)" == "$stamp" ]]; then
        log "reusing librdkafka test build in $RDK"
        return 0
    fi
    ensure_debs
    t0=$(date +%s)
    mkdir -p "$SUITE_DIR"
    rm -rf "$RDK" "$SUITE_DIR/.built-from"
    log "copying $src -> $RDK"
    cp -a "$src" "$RDK" || die "copy failed"
    log "building librdkafka + test-runner (make -j$MAKE_JOBS), log: $SUITE_DIR/build.log"
    (
        cd "$RDK" &&
        ./configure --no-download --disable-curl &&
        nice -n 10 make -j"$MAKE_JOBS" libs &&
        nice -n 10 make -j"$MAKE_JOBS" -C tests build
    ) >"$SUITE_DIR/build.log" 2>&1 || { tail -30 "$SUITE_DIR/build.log" >&2; die "build failed"; }
    echo "$stamp" >"$SUITE_DIR/.built-from"
    log "built in $(( $(date +%s) - t0 )) s"
}

# ------------------------------------------------------------------- plan
# Parses tests[] in tests/test.c and tests/librdkafka/skip.txt. Emits
#   V <num> <name> run|skip <scenario> <reason>   one per test variant
#   N <key> <num> <scenario> <extra run-test.sh args>   one per runner invocation
# key is the test number, or number@scenario for a non-default scenario.
make_plan() {
    python3 - "$TESTS_DIR/test.c" "$SKIP_FILE" "$SELECT" "$([[ -z $BROKER ]] && echo 1 || echo 0)" <<'PY'
import re, sys
testc, skipf, select, own_broker = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == '1'
SCENARIOS = {'noautocreate', 'sasl', 'ssl'}  # non-default scenarios the script can set up
# Test numbers that need a broker configured for them, a scenario of this script (the
# test-runner itself runs them as "default"): SASL credentials against a SASL_PLAINTEXT listener,
# certificates against an SSL listener that verifies client certificates.
CHRONIK_SCENARIOS = {'0135': 'sasl', '0097': 'ssl'}
src = open(testc).read()
body = src[src.index('struct test tests[] = {'):]
body = body[:body.index('{NULL}};')]
body = re.sub(r'/\*.*?\*/', '', body, flags=re.S)
tests = []
for m in re.finditer(r'_TEST\(\s*(\w+)\s*,(.*?)\)\s*,\s*(?=_TEST\(|#|$)', body, flags=re.S):
    name, rest = m.group(1), m.group(2)
    flags = set(f.strip() for f in rest.split(',')[0].split('|'))
    sc = re.search(r'\.scenario\s*=\s*"([^"]*)"', rest)
    tests.append((name[:4], name, flags, sc.group(1) if sc else 'default'))
skips = {}
for line in open(skipf):
    line = line.strip()
    if not line or line.startswith('#'):
        continue
    key, _, reason = line.partition(' ')
    skips[key] = reason.strip() or 'listed in skip.txt'
known = {t[1] for t in tests} | {t[0] for t in tests}
for k in skips:
    if k not in known:
        sys.stderr.write('warning: skip.txt entry %s matches no test\n' % k)
sel = [s.strip() for s in select.split(',') if s.strip()]
def selected(num, name):
    return not sel or any(s == num or s == name for s in sel)
bynum = {}
for num, name, flags, scenario in tests:
    if 'TEST_F_MANUAL' in flags or not selected(num, name):
        continue
    scens = scenario.split(',')
    scen = 'default' if 'default' in scens else scens[0]
    scen = CHRONIK_SCENARIOS.get(num, scen)
    if name in skips:
        reason = skips[name]
    elif num in skips:
        reason = skips[num]
    elif 'TEST_F_SOCKEM' in flags:
        reason = 'harness-only: sockem test, excluded by -E'
    elif 'TEST_F_KNOWN_ISSUE' in flags:
        reason = 'test-runner: upstream TEST_F_KNOWN_ISSUE, not run by default'
    elif scen != 'default' and scen not in SCENARIOS:
        reason = 'test-runner: needs scenario %s' % scen
    elif scen != 'default' and not own_broker:
        reason = 'needs scenario %s (a broker configured for it), only set up when the script starts the brokers' % scen
    else:
        reason = ''
    bynum.setdefault((num, scen), []).append((name, 'TEST_F_LOCAL' in flags, reason))
    print('V\t%s\t%s\t%s\t%s\t%s' % (num, name, 'skip' if reason else 'run', scen, reason))
for (num, scen), vs in bynum.items():
    run = [v for v in vs if not v[2]]
    if not run:
        continue
    listed = [v for v in vs if v[2] and (v[0] in skips or num in skips)]
    args = ''
    # Keep skip-listed variants from running when flags can separate them.
    if listed and all(v[1] for v in listed) and not any(v[1] for v in run):
        args = '-L'
    elif listed and not any(v[1] for v in listed) and all(v[1] for v in run):
        args = '-l'
    key = num if scen == 'default' else '%s@%s' % (num, scen)
    print('N\t%s\t%s\t%s\t%s' % (key, num, scen, args))
PY
}

# --------------------------------------------------------------- results
# parse_result <num> <log> <rc> <timed_out> <names...>: prints result lines.
parse_result() {
    python3 - "$@" <<'PY'
import os, re, sys
num, logf, rc, timed_out = sys.argv[1:5]
names = sys.argv[5:]
text = open(logf, errors='replace').read()
text = re.sub(r'\x1b\[[0-9;]*m', '', text)
rows = {}
for line in text.splitlines():
    m = re.match(r'^\|\s*(\d{4}\w*)\s*\|\s*(\w+)\s*\|\s*[-\d.]+s\s*\|\s*(.*)$', line)
    if m:
        rows[m.group(1)] = (m.group(2), m.group(3).strip())
def first_failure(name=None):
    """The first '### Test "X" failed at FILE:LINE:FUNC() at DATE: ###'
    block (for test `name` if it has one), as 'FILE:LINE:FUNC(): message'."""
    lines = text.splitlines()
    hits = []
    for i, l in enumerate(lines):
        m = re.match(r'^### Test "([^"]+)" failed at (\S+?) at .*###$', l)
        if not m:
            continue
        msg = []
        for x in lines[i + 1:i + 4]:
            if not x.strip() or x.startswith(('[', '%', '###', 'test-runner:', './run-test.sh')):
                break
            msg.append(x.strip())
        # Sub-tests name themselves "test (subtest:line)".
        hits.append((m.group(1).split(' (')[0], '%s: %s' % (m.group(2), ' '.join(msg))))
    for t, msg in hits:
        if t == name:
            return msg
    for t, msg in hits:
        if t != '<MAIN>':
            return msg
    if hits:
        return hits[0][1]
    return ''
def progress(name):
    """What the log says about `name` when there is no summary row."""
    st = None
    for l in text.splitlines():
        if re.search(r'=+ Running test %s =+' % re.escape(name), l):
            st = st or 'started'
        elif re.search(r'=+ Test %s PASSED =+' % re.escape(name), l):
            st = 'passed'
        elif re.match(r'^\[%s\s.*SKIPPING TEST: (.*)$' % re.escape(name), l):
            st = 'skip:' + re.match(r'.*SKIPPING TEST: (.*)$', l).group(1).strip()
    return st
for n in names:
    state, extra = rows.get(n, (None, ''))
    if state == 'PASSED':
        print('PASS %s' % n)
    elif state == 'SKIPPED':
        print('SKIP %s (%s)' % (n, extra or 'skipped by test-runner'))
    elif state == 'FAILED':
        print('FAIL %s (%s)' % (n, extra or first_failure(n) or 'failed'))
    elif state is None and progress(n) == 'passed':
        print('PASS %s' % n)
    elif state is None and (progress(n) or '').startswith('skip:'):
        print('SKIP %s (%s)' % (n, progress(n)[5:]))
    else:
        own = first_failure(n) if re.search(r'### Test "%s( \([^"]*)?" failed' % re.escape(n), text) else ''
        if timed_out == '1':
            why = 'killed: hit the %ss per-test wall clock timeout' % os.environ.get('PER_TEST_TIMEOUT', '?')
        elif state:
            why = 'test-runner reported state %s' % state
        elif own:
            why = 'test-runner exited %s before its summary' % rc
        elif progress(n) == 'started':
            why = 'did not finish: test-runner (exit %s) was aborted by another test' % rc
        else:
            why = 'not started: test-runner exited %s' % rc
        ff = own or first_failure(n)
        print('FAIL %s (%s%s)' % (n, why, '; ' + ff if ff else ''))
PY
}

# ----------------------------------------------------------------- broker
# Brokers, per scenario: "default" (auto-create on) and, for the tests of
# librdkafka's "noautocreate" scenario, a second one with auto-create off.
# All use num.partitions=4 like librdkafka's trivup scenarios
# (tests/scenarios/*.json), which many tests rely on for auto-created topics.
# "sasl" adds a SASL_PLAINTEXT listener (its tests connect there, BADDR stays the PLAINTEXT
# one) and a SCRAM user made with `chronik-server users add` before its first start.
# "ssl" adds an SSL listener (likewise) with certificates made at run time by make_certs.
declare -A BPID=() BDATA=() BADDR=() RUNNING=()
BROKER_ARGS_default="--num-partitions 4 --auto-create-topics true"
BROKER_ARGS_noautocreate="--num-partitions 4 --auto-create-topics false"
BROKER_ARGS_sasl="--num-partitions 4 --auto-create-topics true"
BROKER_ARGS_ssl="--num-partitions 4 --auto-create-topics true"
# 0097 counts a broker certificate it rejects as a failure unless librdkafka reports it as _SSL,
# and librdkafka does so only if the broker's answer to its ClientHello is not there yet at its
# first read. When both share a core, the broker's thread, woken by the ClientHello, often runs
# before the client reads again, and the client reports a transport error instead (see ALONE
# below). So the "ssl" broker runs on the last core and 0097's test-runner on the first one:
# the client then reads at once, and the broker takes milliseconds to answer.
declare -A PINNED_BROKER=() PINNED_CLIENT=()
if (( $(nproc) > 1 )) && command -v taskset >/dev/null; then
    PINNED_BROKER[ssl]="taskset -c $(($(nproc) - 1))"
    PINNED_CLIENT[ssl]="taskset -c 0"
fi
SASL_PORT="" SASL_USER=rdkafkatest SASL_PASSWORD=rdkafkatest-secret SASL_MECHANISM=SCRAM-SHA-512
SSL_PORT="" SSL_PASSWORD=rdkafkatest-keypass
kill_tree() { # pid: the process and its descendants, by id
    local c
    for c in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$c"; done
    kill "$1" 2>/dev/null
}
stop_broker() { # scenario
    local pid=${BPID[$1]:-}
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
        kill -9 "$pid" 2>/dev/null
    fi
    [[ -n ${BDATA[$1]:-} ]] && rm -rf "${BDATA[$1]}"
}
cleanup() {
    local p s
    for p in "${RUNNING[@]}"; do kill_tree "$p"; done
    for s in "${!BPID[@]}"; do stop_broker "$s"; done
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

wait_port() { # host port seconds [pid that must stay alive]
    local i
    for ((i = 0; i < $3 * 4; i++)); do
        (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null && return 0
        [[ -n ${4:-} ]] && ! kill -0 "$4" 2>/dev/null && return 1
        sleep 0.25
    done
    return 1
}

# make_certs <dir>: what trivup's SslApp makes for 0097_ssl_verify, with openssl. Two CAs (the
# first unused, so that all_cas.pem holds several), the client's certificate signed by the
# second in PEM, DER and a PKCS#12 keystore (with both CAs), its key as PKCS#8 PEM encrypted
# with SSL_PASSWORD (ssl.key.password) and as DER, and the broker's certificate for 127.0.0.1.
# Nothing else signs with these CAs: librdkafka's fixtures/ssl/client2.* keys stay untrusted.
make_certs() {
    local d=$1 subj="/C=NN/ST=ST/L=L/O=Chronik librdkafka suite/CN" ca
    command -v openssl >/dev/null || ensure_debs
    mkdir -p "$d"
    ossl() { openssl "$@" >>"$d/openssl.log" 2>&1 || die "openssl $1 failed (log: $d/openssl.log)"; }
    for ca in ca_unused ca; do
        ossl req -new -x509 -newkey rsa:2048 -days 30 -subj "$subj=$ca" \
            -keyout "$d/$ca.key" -passout "pass:$SSL_PASSWORD" -out "$d/$ca.pem"
        ossl x509 -in "$d/$ca.pem" -outform der -out "$d/$ca.der"
    done
    cat "$d/ca_unused.pem" "$d/ca.pem" >"$d/all_cas.pem"
    # Explicit extensions: webpki (rustls) takes only X.509 v3 certificates.
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/broker.ext"
    printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
    # The broker's key is RSA 4096, slower to sign with: a broker whose answer to the ClientHello
    # is there at librdkafka's first read, about 1 ms later on loopback (rustls with a 2048-bit
    # key is that fast), makes the client report a broker certificate it rejects as a transport
    # error (rd_kafka_transport_ssl_connect) instead of _SSL, which 0097 counts as a failure.
    ossl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:4096 -out "$d/broker.key"
    ossl req -new -key "$d/broker.key" -subj "$subj=broker" -out "$d/broker.req"
    ossl x509 -req -in "$d/broker.req" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -passin "pass:$SSL_PASSWORD" -CAcreateserial -days 30 -extfile "$d/broker.ext" \
        -out "$d/broker.pem"
    ossl genpkey -algorithm RSA -aes256 -pass "pass:$SSL_PASSWORD" -out "$d/client-priv.pem"
    ossl pkey -in "$d/client-priv.pem" -passin "pass:$SSL_PASSWORD" -outform der \
        -out "$d/client-priv.der"
    ossl req -new -key "$d/client-priv.pem" -passin "pass:$SSL_PASSWORD" -subj "$subj=client" \
        -out "$d/client.req"
    ossl x509 -req -in "$d/client.req" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
        -passin "pass:$SSL_PASSWORD" -CAserial "$d/ca.srl" -days 30 -extfile "$d/client.ext" \
        -out "$d/client-pub.pem"
    ossl x509 -in "$d/client-pub.pem" -outform der -out "$d/client-pub.der"
    ossl pkcs12 -export -inkey "$d/client-priv.pem" -in "$d/client-pub.pem" \
        -certfile "$d/all_cas.pem" -passin "pass:$SSL_PASSWORD" -passout "pass:$SSL_PASSWORD" \
        -out "$d/client.p12"
}

start_broker() { # scenario; (re)starts it on its previous port and data dir
    local scen=$1 bin=$ROOT/target/debug/chronik-server port args var
    if [[ $BUILD_BROKER -eq 1 || ! -x $bin ]]; then
        log "building chronik-server (cargo build -p chronik-server)"
        (cd "$ROOT" && CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-2} cargo build -q -p chronik-server) ||
            die "cargo build -p chronik-server failed"
    fi
    [[ -n ${BDATA[$scen]:-} ]] || BDATA[$scen]=$(mktemp -d "/tmp/chronik-librdkafka-$scen-XXXXXX")
    port=${BADDR[$scen]:-}; port=${port##*:}
    [[ -n $port ]] || port=$(free_port)
    var=BROKER_ARGS_$scen
    args="${!var} ${LIBRDKAFKA_SUITE_BROKER_ARGS:-}"
    if [[ $scen == sasl ]]; then
        [[ -n $SASL_PORT ]] || SASL_PORT=$(free_port)
        args+=" --listeners PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$SASL_PORT"
        printf '%s' "$SASL_PASSWORD" >"$RUN_DIR/sasl-password"
        "$bin" users add "$SASL_USER" --mechanism "$SASL_MECHANISM" \
            --password-file "$RUN_DIR/sasl-password" --data-dir "${BDATA[$scen]}" ||
            die "chronik-server users add failed"
    fi
    if [[ $scen == ssl ]]; then
        [[ -n $SSL_PORT ]] || SSL_PORT=$(free_port)
        [[ -f $RUN_DIR/ssl/client.p12 ]] || make_certs "$RUN_DIR/ssl"
        # "requested", not "required": 0097's untrusted-client-key cases then expect the
        # connection to succeed without a client certificate (librdkafka withholds one the
        # broker's CA list does not name). Under "required" they expect the refusal the way a
        # Java broker on TLS 1.2 gives it, a bad_certificate alert during the handshake; rustls
        # sends certificate_required, after the handshake on TLS 1.3.
        args+=" --listeners PLAINTEXT://127.0.0.1:$port,SSL://127.0.0.1:$SSL_PORT"
        args+=" --ssl-certificate-file $RUN_DIR/ssl/broker.pem --ssl-key-file $RUN_DIR/ssl/broker.key"
        args+=" --ssl-ca-file $RUN_DIR/ssl/ca.pem --ssl-client-auth requested"
    fi
    # shellcheck disable=SC2086
    CHRONIK_METRICS_LISTEN=${CHRONIK_METRICS_LISTEN:-off} ${PINNED_BROKER[$scen]:-} \
        "$bin" start --listen "127.0.0.1:$port" --data-dir "${BDATA[$scen]}" $args \
        >>"$RUN_DIR/broker-$scen.log" 2>&1 &
    BPID[$scen]=$!
    if ! wait_port 127.0.0.1 "$port" 60 "${BPID[$scen]}"; then
        tail -20 "$RUN_DIR/broker-$scen.log" >&2
        die "chronik-server ($scen) did not accept connections on 127.0.0.1:$port (log: $RUN_DIR/broker-$scen.log)"
    fi
    BADDR[$scen]=127.0.0.1:$port
    log "chronik-server ($scen: $args) pid ${BPID[$scen]} on ${BADDR[$scen]}, data ${BDATA[$scen]}"
}

write_conf() { # scenario file
    local brokers=${BADDR[$1]}
    [[ $1 == sasl ]] && brokers=127.0.0.1:$SASL_PORT
    [[ $1 == ssl ]] && brokers=127.0.0.1:$SSL_PORT
    sed -e "s|@BROKERS@|$brokers|" -e "s|@TIMEOUT_MULTIPLIER@|$TIMEOUT_MULTIPLIER|" \
        "$CONF_TMPL" >"$2"
    if [[ $1 == sasl ]]; then
        printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=$SASL_MECHANISM" \
            "sasl.username=$SASL_USER" "sasl.password=$SASL_PASSWORD" >>"$2"
    fi
    if [[ $1 == ssl ]]; then
        printf '%s\n' "security.protocol=SSL" "ssl.ca.location=$RUN_DIR/ssl/ca.pem" \
            "ssl.certificate.location=$RUN_DIR/ssl/client-pub.pem" \
            "ssl.key.location=$RUN_DIR/ssl/client-priv.pem" "ssl.key.password=$SSL_PASSWORD" >>"$2"
    fi
}

# The main part is one brace group: bash parses it whole before running it,
# so editing this file during a run cannot break the run.
{
# -------------------------------------------------------------------- main
if [[ $LIST_ONLY -eq 1 && -f $TESTS_DIR/test.c ]]; then :; else build_suite; fi
[[ $BUILD_ONLY -eq 1 ]] && exit 0
[[ -f $TESTS_DIR/test.c ]] || build_suite

PLAN=$(make_plan) || die "could not make the test plan"
declare -A NAMES=() ARGS=() NUMOF=() SCENOF=()
KEYS=()
while IFS=$'\t' read -r kind a b c d e; do
    if [[ $kind == V ]]; then
        if [[ $c == run ]]; then
            if [[ $d == default ]]; then NAMES[$a]+="$b "; else NAMES[$a@$d]+="$b "; fi
        fi
    elif [[ $kind == N ]]; then
        KEYS+=("$a"); NUMOF[$a]=$b; SCENOF[$a]=$c; ARGS[$a]=${d:-}
    fi
done <<<"$PLAN"

if [[ $LIST_ONLY -eq 1 ]]; then
    while IFS=$'\t' read -r kind a b c d e; do
        [[ $kind == V ]] || continue
        k=$a; [[ $d == default ]] || k=$a@$d
        if [[ $c == run ]]; then echo "RUN  $b   [TESTS=$a TEST_SCENARIO=$d ./run-test.sh -Q -E ${ARGS[$k]:-}]"
        else echo "SKIP $b (${e:-})"; fi
    done <<<"$PLAN"
    echo "# ${#KEYS[@]} runner invocations; per-test timeout ${PER_TEST_TIMEOUT}s, budget ${BUDGET}s, jobs $JOBS"
    exit 0
fi

RUN_DIR=$SUITE_DIR/runs/$(date +%Y%m%d-%H%M%S)
mkdir -p "$RUN_DIR"
RESULTS=$RUN_DIR/results.txt
: >"$RESULTS"
trap cleanup EXIT
trap 'exit 130' INT TERM

if [[ -z $BROKER ]]; then
    start_broker default
    for k in "${KEYS[@]}"; do
        if [[ ${SCENOF[$k]} != default && -z ${BPID[${SCENOF[$k]}]:-} ]]; then
            start_broker "${SCENOF[$k]}"
        fi
    done
else
    wait_port "${BROKER%:*}" "${BROKER##*:}" 10 || die "broker $BROKER does not accept connections"
    BADDR[default]=$BROKER
fi
declare -A CONF=()
for s in "${!BADDR[@]}"; do
    if [[ $s == default ]]; then CONF[$s]=test.conf; else CONF[$s]=test-$s.conf; fi
    write_conf "$s" "$TESTS_DIR/${CONF[$s]}"
done
log "test.conf -> $TESTS_DIR/test.conf; logs in $RUN_DIR"

emit() { echo "$1"; echo "$1" >>"$RESULTS"; }

# Skips known from the plan are reported first.
while IFS=$'\t' read -r kind a b c d e; do
    [[ $kind == V && $c == skip ]] && emit "SKIP $b (${e:-})"
done <<<"$PLAN"

# This script's own scenarios are librdkafka's "default" to the test-runner.
declare -A RUNNER_SCENARIO=([sasl]=default [ssl]=default)
# The "ssl" scenario's tests also get the certificate files in trivup's SSL_* variables;
# SSL_client_auth tells 0097 the broker's ssl_client_auth.
SSL_ENV=()
[[ -n $SSL_PORT ]] && SSL_ENV=(
    SSL_pkcs="$RUN_DIR/ssl/client.p12" SSL_password="$SSL_PASSWORD"
    SSL_pub_pem="$RUN_DIR/ssl/client-pub.pem" SSL_pub_der="$RUN_DIR/ssl/client-pub.der"
    SSL_priv_pem="$RUN_DIR/ssl/client-priv.pem" SSL_priv_der="$RUN_DIR/ssl/client-priv.der"
    SSL_ca_der="$RUN_DIR/ssl/ca.der" SSL_all_cas_pem="$RUN_DIR/ssl/all_cas.pem"
    SSL_client_auth=requested)
attempt() { # key log-file result-file
    local key=$1 logf=$2 rc timed_out=0 extra_env=()
    [[ ${SCENOF[$key]} == ssl ]] && extra_env=("${SSL_ENV[@]}")
    (
        cd "$TESTS_DIR" &&
        ${PINNED_CLIENT[${SCENOF[$key]}]:-} env -u CI -u KAFKA_PATH -u ZK_ADDRESS -u BROKERS -u TEST_DEBUG "${extra_env[@]}" \
            TESTS="${NUMOF[$key]}" TEST_SCENARIO="${RUNNER_SCENARIO[${SCENOF[$key]}]:-${SCENOF[$key]}}" \
            TEST_KAFKA_VERSION="$KAFKA_VERSION" TEST_LEVEL=2 \
            RDKAFKA_TEST_CONF="${CONF[${SCENOF[$key]}]}" \
            timeout -k 15 "${LONG_TEST_TIMEOUT[${NUMOF[$key]}]:-$PER_TEST_TIMEOUT}" \
                ./run-test.sh -Q -E ${ARGS[$key]:-}
    ) >"$logf" 2>&1
    rc=$?
    [[ $rc -eq 124 || $rc -eq 137 ]] && timed_out=1
    # shellcheck disable=SC2086
    parse_result "${NUMOF[$key]}" "$logf" "$rc" "$timed_out" ${NAMES[$key]} >"$3"
}

# A failed test number runs again: many of librdkafka's tests time their steps, and two run
# side by side on two shared cores. A test number in ALONE (below) gets two more attempts, the
# others one. A pass on a later attempt is reported as such (with the first attempt's log), so a
# flaky test stays visible; failing every attempt is a FAIL.
run_one() { # key
    local key=$1 tries=2 n
    [[ $ALONE == *" ${NUMOF[$key]} "* ]] && tries=3
    attempt "$key" "$RUN_DIR/$key.log" "$RUN_DIR/$key.res.tmp"
    for ((n = 2; n <= tries; n++)); do
        grep -q '^FAIL ' "$RUN_DIR/$key.res.tmp" || break
        attempt "$key" "$RUN_DIR/$key.retry$n.log" "$RUN_DIR/$key.retry.res"
        if ! grep -q '^FAIL ' "$RUN_DIR/$key.retry.res"; then
            sed "s|^PASS \([^ ]*\).*|PASS \1 (on attempt $n; first attempt failed: $RUN_DIR/$key.log)|" \
                "$RUN_DIR/$key.retry.res" >"$RUN_DIR/$key.res.tmp"
        fi
    done
    mv "$RUN_DIR/$key.res.tmp" "$RUN_DIR/$key.res"
}

START=$(date +%s)
export PER_TEST_TIMEOUT
collect() {
    local k s brc
    for k in "${!RUNNING[@]}"; do
        [[ -f $RUN_DIR/$k.res ]] || continue
        wait "${RUNNING[$k]}" 2>/dev/null
        unset "RUNNING[$k]"
        while IFS= read -r l; do emit "$l"; done <"$RUN_DIR/$k.res"
        for s in "${!BPID[@]}"; do
            if ! kill -0 "${BPID[$s]}" 2>/dev/null; then
                wait "${BPID[$s]}" 2>/dev/null; brc=$?
                emit "NOTE broker ($s) exited (status $brc) while ${k%@*} was running; log: $RUN_DIR/broker-$s.log; restarting it"
                start_broker "$s"
            fi
        done
    done
}

# Test numbers run with nothing beside them. 0097 reports the broker certificate it rejects as
# _SSL only if its thread is not descheduled between sending the ClientHello and reading the
# answer; when it is, the answer is already there at its first read and it reports a transport
# error instead, which 0097 counts as a failure (the broker is not involved). A test beside it
# on the two cores makes that likely (both attempts failed in two CI runs); alone it still
# happens now and then (a first attempt in one CI run, both of two attempts in another, on
# 2026-12-07), so these get three attempts. Alone and unpinned, 7 of 11 attempts failed on
# 2026-12-08 (all three in one CI run); with the broker and the client on separate cores
# (PINNED_BROKER above), none of 10.
ALONE=" 0097 "
for key in "${KEYS[@]}"; do
    limit=$JOBS
    [[ $ALONE == *" ${NUMOF[$key]} "* ]] && limit=1
    while [[ ${#RUNNING[@]} -ge $limit ]]; do wait -n 2>/dev/null; collect; sleep 0.1; done
    if (( $(date +%s) - START > BUDGET )); then
        for n in ${NAMES[$key]}; do emit "FAIL $n (not run: suite time budget of ${BUDGET}s exhausted)"; done
        continue
    fi
    run_one "$key" &
    RUNNING[$key]=$!
    if [[ $limit -eq 1 ]]; then
        while [[ ${#RUNNING[@]} -gt 0 ]]; do wait -n 2>/dev/null; collect; sleep 0.1; done
    fi
done
while [[ ${#RUNNING[@]} -gt 0 ]]; do wait -n 2>/dev/null; collect; sleep 0.1; done

PASSED=$(grep -c '^PASS ' "$RESULTS")
FAILED=$(grep -c '^FAIL ' "$RESULTS")
SKIPPED=$(grep -c '^SKIP ' "$RESULTS")
log "run took $(( $(date +%s) - START )) s; results: $RESULTS"
echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
[[ $FAILED -eq 0 ]]
exit $?
}
