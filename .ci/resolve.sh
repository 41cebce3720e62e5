#!/usr/bin/env bash
# Resolves the project with one extra as a new user's first install meets it, and times it: a
# fresh virtualenv with a current pip, an empty pip cache of its own, `pip install --dry-run` (the
# resolver only: nothing is installed; fast-deps reads each wheel's metadata by range requests,
# where pip would otherwise download every wheel it considers: about 400 MB for .[verl] beside
# local torch wheels, several GB more without them). Prints the wall-clock time. Fails when pip
# fails, has not resolved within the bound (it is stopped then), or backtracked: where a current
# pip backtracks through a few releases, an older one (the pip a new virtualenv may bring) can go
# through release after release of unrelated packages, so the extras carry bounds that avoid it.
#   bash .ci/resolve.sh EXTRA [BOUND_SECONDS (default 300)] [PROJECT (default .)]
set -euo pipefail
extra=${1:?extra (areal, verl or skyrl)}
bound=${2:-300}
project=$(cd "${3:-.}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install -q --cache-dir "$work/cache" --upgrade pip
pip_version=$("$work/venv/bin/python" -m pip --version | cut -d' ' -f1-2)
start=$(date +%s)
rc=0
timeout "$bound" "$work/venv/bin/python" -m pip install --dry-run --use-feature=fast-deps --cache-dir "$work/cache" \
    "$project[$extra]" >"$work/log" 2>&1 || rc=$?
took=$(($(date +%s) - start))
backtracked=$(grep -oE 'INFO: pip is looking at multiple versions of [^ ]+' "$work/log" | awk '{print $NF}' | sort -u | xargs || true)
if [ "$rc" = 124 ]; then
    echo "resolves with .[$extra]: NOT resolved within ${bound} s (empty cache, $pip_version; backtracking through: ${backtracked:-nothing})"
    exit 1
elif [ "$rc" != 0 ]; then
    tail -30 "$work/log"
    echo "resolves with .[$extra]: pip failed after ${took} s"
    exit 1
elif [ -n "$backtracked" ]; then
    echo "resolves with .[$extra]: in ${took} s, but pip backtracked through: $backtracked (bound it in the extra)"
    exit 1
fi
echo "resolves with .[$extra]: ok in ${took} s without backtracking (bound ${bound} s, empty cache, $pip_version)"
