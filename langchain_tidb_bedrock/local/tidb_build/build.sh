#!/usr/bin/env bash
# Build tidb-server from the Go module proxy into a cache outside the repo, keyed by version.
# `go install` cannot build TiDB (its go.mod has replace directives), so we make a wrapper module
# that requires tidb and its parser at one pseudo-version and copies upstream's non-local replaces.
# Prints the binary path on the last line of stdout. A second run with the binary present costs nothing.
set -euo pipefail

TIDB_VER=${TIDB_VER:-v1.1.0-beta.0.20251126154744-e4e814fdc0af}
PARSER_VER=${PARSER_VER:-v0.0.0-${TIDB_VER##*.0.}}
TIDB_LABEL=${TIDB_LABEL:-v8.5.4-local}
CACHE=${LTB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/langchain-tidb-bedrock}
W="$CACHE/tidb-server/$TIDB_VER"
BIN="$W/bin/tidb-server"

if [ -x "$BIN" ] && "$BIN" -V >/dev/null 2>&1; then
  echo "$BIN"; exit 0
fi

command -v go >/dev/null || { echo "error: Go is not installed; install Go >= 1.23 to build tidb-server" >&2; exit 1; }
command -v cc >/dev/null || { echo "error: no C compiler (cc); install gcc to build tidb-server" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=1
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$W"; cd "$W"
if [ -f "$HERE/go.mod" ] && grep -q "$TIDB_VER" "$HERE/go.mod"; then
  # Reuse the committed wrapper module (its go.sum pins every dependency).
  cp "$HERE/go.mod" "$HERE/go.sum" "$W/"
else
  rm -f go.mod go.sum
  go mod init local/tidbwrapper >/dev/null 2>&1
  go mod edit -require=github.com/pingcap/tidb@"$TIDB_VER" -require=github.com/pingcap/tidb/pkg/parser@"$PARSER_VER"
  J=$(go mod download -json github.com/pingcap/tidb@"$TIDB_VER")
  UPMOD=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["GoMod"])' "$J")
  go mod edit -json "$UPMOD" | python3 -c '
import json, sys
for r in json.load(sys.stdin).get("Replace") or []:
    o, n = r["Old"], r["New"]
    if not n.get("Version"):
        continue  # local replaces such as ./pkg/parser are satisfied by the explicit require
    print("-replace=" + o["Path"] + ("@" + o["Version"] if o.get("Version") else "") + "=" + n["Path"] + "@" + n["Version"])
' | xargs -r go mod edit
fi
SRC=$(go mod download -json github.com/pingcap/tidb@"$TIDB_VER" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
if [ -f "$SRC/pkg/util/hack/map_abi.go" ] && [ ! -f "$SRC/pkg/util/hack/map_abi_go126.go" ]; then
  echo "error: TiDB $TIDB_VER panics at start-up under $(go env GOVERSION); use a newer TIDB_VER" >&2; exit 1
fi
echo "building tidb-server $TIDB_VER with $(go env GOVERSION) (first build takes 10-25 min) ..." >&2
go build -tags codes -trimpath -o "$BIN.tmp" \
  -ldflags "-X github.com/pingcap/tidb/pkg/parser/mysql.TiDBReleaseVersion=$TIDB_LABEL -X github.com/pingcap/tidb/pkg/util/versioninfo.TiDBEdition=Community" \
  github.com/pingcap/tidb/cmd/tidb-server
"$BIN.tmp" -V >&2
mv "$BIN.tmp" "$BIN"
echo "$BIN"
