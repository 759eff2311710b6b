#!/bin/sh
# Wait for a session's verdict with nothing but socat: prints the verdict
# (or error) line and exits with the verdict's "exit" field (3 on error).
# Usage: verdict-wait.sh <session-dir> [cap_ms]
set -eu
[ $# -ge 1 ] || { echo "usage: $0 <session-dir> [cap_ms]" >&2; exit 2; }
sock="${VERDICT_SOCKET:-${XDG_RUNTIME_DIR:-/tmp/verdictd-$(id -u)}/verdictd.sock}"
session="$(realpath "$1")"
cap="${2:-60000}"
# socat gives the reply this long after our half-close; cap 0 is no cap.
if [ "$cap" -eq 0 ]; then timeout_s=1000000000; else timeout_s=$(( cap / 1000 + 60 )); fi
verdict=$(printf '{"v":1,"id":1,"op":"wait","session":"%s","cap_ms":%s}\n' "$session" "$cap" \
  | socat -t "$timeout_s" - UNIX-CONNECT:"$sock" \
  | grep -m1 -e '"event":"verdict"' -e '"event":"error"') || true
echo "$verdict"
code=$(printf '%s' "$verdict" | sed -n 's/.*"exit":\([0-9]*\).*/\1/p')
exit "${code:-3}"
