#!/usr/bin/env bash
# Run one command with the services up (see services.sh), then stop the Docker daemon again if
# this run is what started it, whether the command passed or failed. Exits with the command's
# status.
#
#   scripts/with-services.sh CMD [ARG...]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)

# A daemon that answers before `up` belongs to someone else (or to an earlier `up`): leave it.
started_here=true
if docker info >/dev/null 2>&1; then
    started_here=false
fi

if $started_here; then
    trap '"$here/services.sh" down' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
fi
"$here/services.sh" up
"$@"
