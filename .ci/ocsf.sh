# Sourced by .ci/run: the OCSF validator the OCSF output tests use. A virtual environment with
# the PyPI packages ocsf-json-schema (the OCSF schemas 1.0.0 to 1.8.0, and JSON Schemas of their
# classes generated from them) and jsonschema, made once into a cache. The tests find its Python
# through AUTHWATCH_OCSF_PYTHON and run .ci/ocsf_validate.py with it; without it they skip,
# saying so, and under CI=true they fail.
OCSF_JSON_SCHEMA_VERSION=1.2.0
JSONSCHEMA_VERSION=4.26.0
ocsf_venv="${XDG_CACHE_HOME:-$HOME/.cache}/authwatch/ocsf-$OCSF_JSON_SCHEMA_VERSION-jsonschema-$JSONSCHEMA_VERSION"

ocsf_validator() {
    echo "== OCSF validator (PyPI ocsf-json-schema $OCSF_JSON_SCHEMA_VERSION, jsonschema $JSONSCHEMA_VERSION)"
    if ! "$ocsf_venv/bin/python" -c 'import jsonschema, ocsf_json_schema' 2>/dev/null; then
        rm -rf "$ocsf_venv"
        if ! { python3 -m venv "$ocsf_venv" &&
            "$ocsf_venv/bin/python" -m pip install -q --disable-pip-version-check \
                "ocsf-json-schema==$OCSF_JSON_SCHEMA_VERSION" "jsonschema==$JSONSCHEMA_VERSION"; }; then
            echo "warning: cannot install the OCSF validator; the tests that use it will fail"
            rm -rf "$ocsf_venv"
            return 0
        fi
    fi
    export AUTHWATCH_OCSF_PYTHON="$ocsf_venv/bin/python"
    echo "AUTHWATCH_OCSF_PYTHON=$AUTHWATCH_OCSF_PYTHON"
}
