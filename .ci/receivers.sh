# Sourced by .ci/run: installs (once) and starts the real receivers the sink tests use
# (tests/it/sinks_*.rs) on 127.0.0.1, exports where they listen, and stops them at exit.
# Tests skip, with the reason printed, when these variables are missing.

RECV_DIR=$(mktemp -d /tmp/authwatch-receivers.XXXXXX)
RECV_PIDS=()
receivers_stop() {
    for pid in "${RECV_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$RECV_DIR"
}
trap receivers_stop EXIT

echo "== sink test receivers (rsyslog, postfix smtp-sink, aiosmtpd)"
missing=()
command -v rsyslogd >/dev/null || missing+=(rsyslog)
dpkg -s rsyslog-gnutls >/dev/null 2>&1 || missing+=(rsyslog-gnutls)
[ -x /usr/sbin/smtp-sink ] || missing+=(postfix)
if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
python3 -c 'import aiosmtpd' 2>/dev/null || pip install -q aiosmtpd

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
wait_port() { # port: waits up to 10 s for something to listen
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    return 1
}

# A private CA and a server certificate for 127.0.0.1 and localhost: rustls refuses a
# self-signed CA certificate presented as the server's own, as a real deployment would.
(
    cd "$RECV_DIR"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=authwatch test CA" \
        -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' > ext.cnf
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -out server.pem -extfile ext.cnf 2>/dev/null
)
export AUTHWATCH_TEST_CA="$RECV_DIR/ca.pem"
export AUTHWATCH_TEST_SERVER_CERT="$RECV_DIR/server.pem"
export AUTHWATCH_TEST_SERVER_KEY="$RECV_DIR/server.key"

# SMTP with STARTTLS and AUTH (aiosmtpd): messages land in a spool directory. The outage test
# starts and stops its own instance of the same script.
port=$(free_port)
export AUTHWATCH_TEST_SMTP_USER=authwatch AUTHWATCH_TEST_SMTP_PASSWORD=test-password
export AUTHWATCH_TEST_SMTP_RECEIVER="$PWD/.ci/smtp_receiver.py"
python3 "$AUTHWATCH_TEST_SMTP_RECEIVER" --port "$port" --spool "$RECV_DIR/spool" \
    --cert "$AUTHWATCH_TEST_SERVER_CERT" --key "$AUTHWATCH_TEST_SERVER_KEY" \
    --auth "$AUTHWATCH_TEST_SMTP_USER:$AUTHWATCH_TEST_SMTP_PASSWORD" >"$RECV_DIR/smtp.log" 2>&1 &
RECV_PIDS+=($!)
wait_port "$port"
export AUTHWATCH_TEST_SMTP="127.0.0.1:$port" AUTHWATCH_TEST_SMTP_SPOOL="$RECV_DIR/spool"

# postfix's smtp-sink answering RCPT with 4xx (soft) and with 5xx (hard); as root it must be
# told whom to run as.
sink_user=()
[ "$(id -u)" = 0 ] && sink_user=(-u nobody)
port=$(free_port)
/usr/sbin/smtp-sink "${sink_user[@]}" -r RCPT "127.0.0.1:$port" 16 &
RECV_PIDS+=($!)
wait_port "$port"
export AUTHWATCH_TEST_SMTP_SOFT="127.0.0.1:$port"
port=$(free_port)
/usr/sbin/smtp-sink "${sink_user[@]}" -f RCPT "127.0.0.1:$port" 16 &
RECV_PIDS+=($!)
wait_port "$port"
export AUTHWATCH_TEST_SMTP_HARD="127.0.0.1:$port"

# rsyslog: RFC 5424 over TCP and over TLS (gtls), CEF parsed by mmnormalize, one JSON line
# per message in a file.
tcp=$(free_port)
tls=$(free_port)
mkdir -p "$RECV_DIR/rsyslog"
printf 'version=2\nrule=:%%cef:cef%%\n' > "$RECV_DIR/cef.rb"
cat > "$RECV_DIR/rsyslog.conf" <<CONF
global(workDirectory="$RECV_DIR/rsyslog"
       DefaultNetstreamDriverCAFile="$RECV_DIR/ca.pem"
       DefaultNetstreamDriverCertFile="$RECV_DIR/server.pem"
       DefaultNetstreamDriverKeyFile="$RECV_DIR/server.key")
module(load="imtcp" MaxSessions="100")
module(load="mmnormalize")
template(name="parsed" type="string" string="{\"transport\":\"%\$.transport%\",\"pri\":%pri%,\"host\":\"%hostname:::json%\",\"app\":\"%app-name:::json%\",\"msgid\":\"%msgid:::json%\",\"sd\":\"%structured-data:::json%\",\"parsed\":%\$!all-json%}\n")
ruleset(name="cef") {
    action(type="mmnormalize" rulebase="$RECV_DIR/cef.rb")
    action(type="omfile" file="$RECV_DIR/syslog.jsonl" template="parsed")
}
ruleset(name="tcp") { set \$.transport = "tcp"; call cef }
ruleset(name="tls") { set \$.transport = "tls"; call cef }
input(type="imtcp" port="$tcp" ruleset="tcp")
input(type="imtcp" port="$tls" ruleset="tls" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")
CONF
# Its log goes aside: the port probes below look like failed TLS handshakes to it.
rsyslogd -n -f "$RECV_DIR/rsyslog.conf" -i "$RECV_DIR/rsyslog.pid" >"$RECV_DIR/rsyslog.log" 2>&1 &
RECV_PIDS+=($!)
wait_port "$tcp"
wait_port "$tls"
export AUTHWATCH_TEST_SYSLOG_TCP="127.0.0.1:$tcp" AUTHWATCH_TEST_SYSLOG_TLS="127.0.0.1:$tls"
export AUTHWATCH_TEST_SYSLOG_OUT="$RECV_DIR/syslog.jsonl"
