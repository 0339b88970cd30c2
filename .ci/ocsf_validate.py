#!/usr/bin/env python3
"""Validates OCSF events, one JSON object a line (files or standard input), against the JSON
Schema of their class in the OCSF version each declares (`metadata.version`), as the PyPI
package ocsf-json-schema generates it from the OCSF schema it ships, with jsonschema
(Draft 2020-12). `--version V` validates against V as well (a later schema a consumer may
hold). Prints every error with its line; exits 1 on any, 2 on no input."""

import argparse
import json
import sys

from jsonschema import Draft202012Validator
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

_validators = {}


def validator(version, class_uid):
    key = (version, class_uid)
    if key not in _validators:
        schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=version))
        name = schema.lookup_class_name_from_uid(class_uid=class_uid)
        _validators[key] = Draft202012Validator(schema.get_class_schema(class_name=name, profiles=[]))
    return _validators[key]


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", nargs="*")
    parser.add_argument("--version", action="append", default=[])
    args = parser.parse_args()
    streams = [open(f, encoding="utf-8") for f in args.files] or [sys.stdin]
    checked = errors = 0
    for stream in streams:
        for n, line in enumerate(stream, 1):
            if not line.strip():
                continue
            event = json.loads(line)
            declared = event.get("metadata", {}).get("version")
            for version in [declared, *args.version]:
                for e in validator(version, event.get("class_uid")).iter_errors(event):
                    errors += 1
                    path = "/".join(str(p) for p in e.absolute_path)
                    print(f"{stream.name}:{n}: OCSF {version}: /{path}: {e.message[:300]}", file=sys.stderr)
            checked += 1
    if checked == 0:
        print("no OCSF events to validate", file=sys.stderr)
        return 2
    print(f"{checked} events checked, {errors} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
