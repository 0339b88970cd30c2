#!/usr/bin/env bash
# How many of SigmaHQ's identity rules authwatch loads: per folder, the Sigma documents
# (rules and correlations) found, how many `authwatch check` loads, how many of those are idle
# because authwatch reads no such logsource, and the warnings of those it refuses.
#
#   git clone --depth 1 https://github.com/SigmaHQ/sigma /tmp/sigma
#   scripts/sigmahq-load-rate.sh /tmp/sigma            # the identity folders of a checkout
#   scripts/sigmahq-load-rate.sh DIR...                # or any folders of Sigma rules
#
# AUTHWATCH names the binary (default: target/debug/authwatch, else authwatch on PATH).
set -euo pipefail

bin=${AUTHWATCH:-}
if [[ -z $bin ]]; then
    here=$(cd "$(dirname "$0")/.." && pwd)
    if [[ -x $here/target/debug/authwatch ]]; then bin=$here/target/debug/authwatch; else bin=authwatch; fi
fi

folders=()
root=
if [[ $# -eq 1 && -d $1/rules ]]; then
    root=${1%/}/
    # The identity providers' folders of a SigmaHQ checkout (layouts before and after the move
    # of Okta and Duo to rules/identity); those absent are left out.
    for f in rules/identity/okta rules/cloud/okta rules/identity/cisco_duo rules/cloud/duo \
        rules/cloud/onelogin rules/cloud/azure/signin_logs rules/cloud/azure/identity_protection \
        rules/cloud/gcp/gworkspace rules/cloud/auth0; do
        [[ -d $1/$f ]] && folders+=("$1/$f")
    done
    if [[ -d $1/.git ]]; then
        echo "SigmaHQ commit: $(git -C "$1" rev-parse HEAD)"
    fi
else
    folders=("$@")
fi
[[ ${#folders[@]} -gt 0 ]] || { echo "usage: $0 SIGMAHQ_CHECKOUT | DIR..." >&2; exit 64; }

echo "| folder | documents | loaded | of which idle (no format authwatch reads) | refused |"
echo "|---|---|---|---|---|"
total_docs=0 total_loaded=0 total_idle=0
for dir in "${folders[@]}"; do
    docs=$(find -L "$dir" -name '*.yml' -exec grep -hcE '^(detection|correlation):' {} + |
        awk '{s += $1} END {print s + 0}')
    out=$("$bin" check --rules "$dir" 2>&1) || true
    loaded=$(sed -nE 's/^.*: ([0-9]+) rules \(.*\) OK$/\1/p' <<<"$out")
    if [[ -z $loaded ]]; then
        echo "check failed on $dir:" >&2
        echo "$out" >&2
        loaded=0
    fi
    idle=$(sed -nE 's/^([0-9]+) Sigma rules idle \(their logsource is no format authwatch reads\).*/\1/p' <<<"$out")
    idle=${idle:-0}
    # One reason per refused rule: its first warning, without the position.
    reasons=$( (grep '^warning: ' <<<"$out" || true) | sed -E 's/^warning: [^ ]+ rule ([^:]+): (.*); the (rule|correlation) is skipped$/\1\t\2/' |
        sort -u -t$'\t' -k1,1 | cut -f2 | sort | uniq -c | sed -E 's/^ *([0-9]+) /\1x /; s/\|/\\|/g' | paste -sd ';' -)
    refused=$((docs - loaded))
    echo "| ${dir#"$root"} | $docs | $loaded | $idle | $refused${reasons:+ ($reasons)} |"
    total_docs=$((total_docs + docs)) total_loaded=$((total_loaded + loaded)) total_idle=$((total_idle + idle))
done
rate=$(awk -v l="$total_loaded" -v d="$total_docs" 'BEGIN {printf "%.1f", d ? 100 * l / d : 0}')
echo "| all | $total_docs | $total_loaded | $total_idle | $((total_docs - total_loaded)) |"
echo "load rate: $total_loaded of $total_docs documents ($rate%)"
