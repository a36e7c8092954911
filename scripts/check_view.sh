#!/usr/bin/env bash
# Screenshots of `rlstore view` taken by Debian's headless Chromium (`apt-get install chromium`):
# the home page and an image dataset's episode page, written to docs/view_home.png and
# docs/view_episode.png. Not part of `make test`: the two README commands do not install a browser.
#   bash scripts/check_view.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
BROWSER=$(command -v chromium || command -v chromium-browser || true)
[ -n "$BROWSER" ] || { echo "error: no chromium on PATH (apt-get install chromium)" >&2; exit 1; }
STORE=$(mktemp -d)
SERVER=
cleanup() { [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$STORE"; }
trap cleanup EXIT
$BIN/python scripts/view_sample_store.py "$STORE/store"
for policy in expert random; do  # two runs writing back: versions 1 and 2, each with its run
    $BIN/rlstore --store "$STORE/store" record --env catch --policy $policy --episodes 6 --dataset catch > /dev/null
done
$BIN/rlstore --store "$STORE/store" view --port 0 > "$STORE/view.log" &
SERVER=$!
for _ in $(seq 100); do grep -q "http://" "$STORE/view.log" 2>/dev/null && break; sleep 0.2; done
URL=$(grep -o "http://[0-9.:]*/" "$STORE/view.log")
mkdir -p docs
shoot() {  # URL FILE
    "$BROWSER" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,1400 \
        --user-data-dir="$STORE/chromium" --screenshot="$2" "$1" 2>/dev/null
    [ -s "$2" ] || { echo "error: no screenshot of $1" >&2; exit 1; }
    echo "wrote $2"
}
shoot "$URL" docs/view_home.png
shoot "${URL}episode?name=bouncing&v=1&i=2" docs/view_episode.png
shoot "${URL}dataset?name=catch" docs/view_lineage.png
