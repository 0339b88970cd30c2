# Sourced by .ci/run: pySigma, for the test that checks it reads the Sigma fixture rules as
# authwatch does (tests/it/sigma.rs, through .ci/sigma_describe.py). A virtual environment with
# the PyPI package pysigma, made once into a cache. The test finds its Python through
# AUTHWATCH_PYSIGMA_PYTHON; without it the test skips, saying so, and under CI=true it fails.
PYSIGMA_VERSION=2.0.1
pysigma_venv="${XDG_CACHE_HOME:-$HOME/.cache}/authwatch/pysigma-$PYSIGMA_VERSION"

pysigma_env() {
    echo "== pySigma (PyPI pysigma $PYSIGMA_VERSION)"
    if ! "$pysigma_venv/bin/python" -c 'import sigma.collection, yaml' 2>/dev/null; then
        rm -rf "$pysigma_venv"
        if ! { python3 -m venv "$pysigma_venv" &&
            "$pysigma_venv/bin/python" -m pip install -q --disable-pip-version-check \
                "pysigma==$PYSIGMA_VERSION"; }; then
            echo "warning: cannot install pySigma; the test that uses it will fail"
            rm -rf "$pysigma_venv"
            return 0
        fi
    fi
    export AUTHWATCH_PYSIGMA_PYTHON="$pysigma_venv/bin/python"
    echo "AUTHWATCH_PYSIGMA_PYTHON=$AUTHWATCH_PYSIGMA_PYTHON"
}
