#!/bin/sh
# Runs ui/dev/selftest.js in headless Chromium against the mock backend and prints the results.
# Needs `chromium` (Debian package). Exit status: 0 when every check passed.
set -eu
cd "$(dirname "$0")/.."
port=${PORT:-8765}
python3 -m http.server "$port" --bind 127.0.0.1 >/dev/null 2>&1 &
server=$!
trap 'kill "$server"' EXIT
sleep 1
profile=$(mktemp -d)
out=$(timeout 120 chromium --headless --no-sandbox --disable-gpu --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$profile" --window-size=400,560 --virtual-time-budget=60000 \
  --dump-dom "http://127.0.0.1:$port/dev/index.html?selftest=1" 2>/dev/null)
rm -rf "$profile"
results=$(printf '%s' "$out" | sed -n '/<pre id="selftest">/,/<\/pre>/p' | sed 's/<[^>]*>//g; s/&gt;/>/g; s/&lt;/</g; s/&amp;/\&/g')
if [ -z "$results" ]; then
  echo "selftest produced no results"
  exit 1
fi
printf '%s\n' "$results"
printf '%s' "$results" | grep -q '^DONE 0 failed'
