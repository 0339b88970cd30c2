# Sourced by .ci/run, which calls the two functions:
# - kafka_build_deps: what librdkafka needs to build from source (rdkafka-sys links the
#   system OpenSSL and zlib), before anything compiles;
# - kafka_broker_start: a real Kafka-protocol broker for the Kafka source tests
#   (tests/it/kafka.rs): tansu, installed once into a cache folder, started on 127.0.0.1
#   with in-memory storage and stopped at exit. Exports AUTHWATCH_KAFKA_BROKERS, and
#   AUTHWATCH_TANSU (the binary, for the broker restart test's own broker on SQLite); the
#   tests skip, with the reason printed, without them.

kafka_build_deps() {
    echo "== librdkafka build dependencies"
    local missing=()
    for pkg in libssl-dev pkg-config zlib1g-dev; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

kafka_broker_start() {
    echo "== kafka broker (tansu) for the Kafka source tests"
    TANSU_ROOT="${AUTHWATCH_CI_CACHE:-$HOME/.cache/authwatch-ci}/tansu-libsql"
    if [ ! -x "$TANSU_ROOT/bin/tansu" ]; then
        # About 20 minutes cold. `dynostore` is the in-memory engine the shared broker uses (the
        # default features build a broker without it); `libsql` the SQLite engine of the broker
        # restart test, which starts a broker of its own on a file (AUTHWATCH_TANSU below).
        cargo install tansu --version 0.6.0 --locked --no-default-features \
            --features dynostore,libsql --root "$TANSU_ROOT"
    fi
    export AUTHWATCH_TANSU="$TANSU_ROOT/bin/tansu"
    KAFKA_DIR=$(mktemp -d /tmp/authwatch-kafka.XXXXXX)
    kafka_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$TANSU_ROOT/bin/tansu" broker \
        --listener-url "tcp://127.0.0.1:$kafka_port" \
        --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
        --storage-engine memory://tansu/ >"$KAFKA_DIR/tansu.log" 2>&1 &
    KAFKA_PID=$!
    kafka_stop() {
        kill "$KAFKA_PID" 2>/dev/null || true
        wait "$KAFKA_PID" 2>/dev/null || true
        rm -rf "$KAFKA_DIR"
    }
    # Chain with whatever an earlier sourced script set to run at exit.
    kafka_previous_trap=$(trap -p EXIT | sed -e "s/^trap -- '//" -e "s/' EXIT\$//")
    trap "kafka_stop; ${kafka_previous_trap:-:}" EXIT
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null && break
        sleep 0.1
    done
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$kafka_port") 2>/dev/null; then
        echo "tansu did not start; its log:" >&2
        cat "$KAFKA_DIR/tansu.log" >&2
        exit 1
    fi
    export AUTHWATCH_KAFKA_BROKERS="127.0.0.1:$kafka_port"
    echo "tansu listens on $AUTHWATCH_KAFKA_BROKERS"
}
