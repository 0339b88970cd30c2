"""pySigma's reading of a Sigma file, in the neutral shape `authwatch::rule::sigma::describe`
gives: per document (in file order) the title, then for a rule each selection's fields,
modifiers, values and value linking and the condition tree, for a correlation its type, rules,
group-by, timespan, condition, aliases and generate. tests/it/sigma.rs compares the two.

Usage: python sigma_describe.py FILE  (prints one JSON list)
"""

import json
import sys

import yaml
from sigma.collection import SigmaCollection
from sigma.conditions import (
    ConditionAND,
    ConditionIdentifier,
    ConditionNOT,
    ConditionOR,
    ConditionSelector,
)
from sigma.correlations import SigmaCorrelationRule
from sigma.modifiers import (
    SigmaCIDRModifier,
    SigmaExistsModifier,
    SigmaFieldReferenceModifier,
    SigmaRegularExpressionModifier,
    reverse_modifier_mapping,
)
from sigma.rule import SigmaDetection, SigmaDetectionItem
from sigma.types import SigmaString

# The long names pySigma also accepts for the regex flags, as authwatch writes them back.
SHORT = {"ignorecase": "i", "multiline": "m", "dotall": "s"}
# Modifiers whose values are not Sigma strings with wildcards.
LITERAL = (
    SigmaRegularExpressionModifier,
    SigmaCIDRModifier,
    SigmaFieldReferenceModifier,
    SigmaExistsModifier,
)


def scalar(value, modifiers):
    """A value as authwatch writes it back: Sigma strings in canonical escaped form, the
    values of regex, cidr, fieldref and exists as written."""
    if isinstance(value, SigmaString):
        if any(m in modifiers for m in LITERAL):
            return value.original
        return value.to_plain(escape_backslash=True)
    plain = value.to_plain()
    if plain is None:
        return None
    if isinstance(plain, bool):
        return "true" if plain else "false"
    return str(plain)


def item(detection_item):
    modifiers = detection_item.modifiers
    return {
        "field": detection_item.field,
        "modifiers": [
            SHORT.get(reverse_modifier_mapping[m.__name__], reverse_modifier_mapping[m.__name__])
            for m in modifiers
        ],
        "values": [scalar(v, modifiers) for v in detection_item.original_value],
        "linking": "and" if detection_item.value_linking is ConditionAND else "or",
    }


def selection(detection):
    if isinstance(detection, SigmaDetectionItem):
        return item(detection)
    linking = "and" if detection.item_linking is ConditionAND else "or"
    return {linking: [selection(d) for d in detection.detection_items]}


def condition(node, detections):
    if isinstance(node, ConditionIdentifier):
        return node.identifier
    if isinstance(node, ConditionSelector):
        names = [i.identifier for i in node.resolve_referenced_detections(detections)]
        return {"and" if node.cond_class is ConditionAND else "or": names}
    if isinstance(node, ConditionNOT):
        return {"not": condition(node.args[0], detections)}
    op = "and" if isinstance(node, ConditionAND) else "or"
    assert isinstance(node, (ConditionAND, ConditionOR)), node
    return {op: [condition(a, detections) for a in node.args]}


def correlation(rule, raw):
    cond = rule.condition
    described = {cond.op.name.lower(): str(cond.count)}
    if getattr(cond, "fieldref", None):
        described["field"] = cond.fieldref
    aliases = {}
    for alias in rule.aliases.aliases.values():
        aliases[alias.alias] = {ref.reference: field for ref, field in alias.mapping.items()}
    return {
        "title": rule.title,
        "correlation": {
            "type": rule.type.name.lower(),
            "rules": [r.reference for r in rule.rules],
            "group-by": rule.group_by or [],
            "timespan_ms": rule.timespan.seconds * 1000,
            "condition": described,
            "aliases": aliases,
            "generate": bool(rule.generate),
        },
    }


def describe(path):
    text = open(path, encoding="utf-8").read()
    documents = [d for d in yaml.safe_load_all(text) if d is not None]
    collection = SigmaCollection.from_yaml(text, collect_errors=True)
    out = []
    for raw, rule in zip(documents, collection.rules):
        try:
            if rule.errors:
                raise rule.errors[0]
            if isinstance(rule, SigmaCorrelationRule):
                out.append(correlation(rule, raw))
                continue
            detections = rule.detection
            out.append(
                {
                    "title": rule.title,
                    "detections": {
                        name: selection(d) for name, d in detections.detections.items()
                    },
                    "conditions": [
                        condition(c.parse(postprocess=False), detections)
                        for c in detections.parsed_condition
                    ],
                }
            )
        except Exception as e:  # reported per document, compared as "pySigma refused it"
            out.append({"title": raw.get("title"), "errors": [str(e)]})
    return out


if __name__ == "__main__":
    json.dump(describe(sys.argv[1]), sys.stdout, indent=1)
