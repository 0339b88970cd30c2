# Sourced by .ci/run: MaxMind's official GeoIP test databases (GeoIP2-City-Test.mmdb,
# GeoLite2-ASN-Test.mmdb and files broken on purpose), which the PyPI `maxminddb` source
# distribution ships. Fetched once into a cache; the tests find them through
# AUTHWATCH_MAXMIND_TEST_DATA and skip, saying so, when it is unset.
MAXMIND_SDIST_VERSION=3.2.0
maxmind_cache="${XDG_CACHE_HOME:-$HOME/.cache}/authwatch/maxminddb-$MAXMIND_SDIST_VERSION"

maxmind_test_data() {
    echo "== MaxMind test databases (PyPI maxminddb $MAXMIND_SDIST_VERSION sdist)"
    if [ ! -f "$maxmind_cache/test-data/GeoIP2-City-Test.mmdb" ]; then
        local tmp
        tmp=$(mktemp -d)
        if ! python3 -m pip download -q --no-deps --no-binary :all: \
            "maxminddb==$MAXMIND_SDIST_VERSION" -d "$tmp"; then
            echo "warning: cannot fetch the maxminddb sdist; the tests that use it will skip"
            rm -rf "$tmp"
            return 0
        fi
        tar xzf "$tmp/maxminddb-$MAXMIND_SDIST_VERSION.tar.gz" -C "$tmp"
        mkdir -p "$maxmind_cache"
        rm -rf "$maxmind_cache/test-data"
        cp -r "$tmp/maxminddb-$MAXMIND_SDIST_VERSION/tests/data/test-data" "$maxmind_cache/"
        rm -rf "$tmp"
    fi
    export AUTHWATCH_MAXMIND_TEST_DATA="$maxmind_cache/test-data"
    echo "AUTHWATCH_MAXMIND_TEST_DATA=$AUTHWATCH_MAXMIND_TEST_DATA"
}
