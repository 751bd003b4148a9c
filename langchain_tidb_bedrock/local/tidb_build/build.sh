#!/usr/bin/env bash
# Build tidb-server from the Go module proxy into a cache outside the repo, keyed by version.
# `go install` cannot build TiDB (its go.mod has replace directives), so we make a wrapper module
# that requires tidb and its parser at one pseudo-version and copies upstream's non-local replaces.
# Prints the binary path on the last line of stdout. A second run with the binary present costs nothing.
#
# `build.sh tiflash` builds the mock-TiFlash variant (bin/tidb-server-tiflash) from the same module:
# TiDB's own cmd/tidb-server/main.go, taken from the module cache and patched (tiflash/main.go.patch),
# plus our glue (tiflash/mocktiflash.go). With the stock build's Go cache warm it is a short relink.
set -euo pipefail

VARIANT=${1:-stock}
case "$VARIANT" in stock|tiflash) ;; *) echo "usage: build.sh [stock|tiflash]" >&2; exit 2;; esac

TIDB_VER=${TIDB_VER:-v1.1.0-beta.0.20251126154744-e4e814fdc0af}
PARSER_VER=${PARSER_VER:-v0.0.0-${TIDB_VER##*.0.}}
TIDB_LABEL=${TIDB_LABEL:-v8.5.4-local}
CACHE=${LTB_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/langchain-tidb-bedrock}
W="$CACHE/tidb-server/$TIDB_VER"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ "$VARIANT" = tiflash ]; then
  BIN="$W/bin/tidb-server-tiflash"
  # The binary is rebuilt when the glue or the patch changes, not only when the version does.
  STAMP=$(cat "$HERE/tiflash/mocktiflash.go" "$HERE/tiflash/main.go.patch" | python3 -c 'import hashlib,sys;print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())')
else
  BIN="$W/bin/tidb-server"
  STAMP=stock
fi

if [ -x "$BIN" ] && [ "$(cat "$BIN.stamp" 2>/dev/null || echo stock)" = "$STAMP" ] && "$BIN" -V >/dev/null 2>&1; then
  echo "$BIN"; exit 0
fi

command -v go >/dev/null || { echo "error: Go is not installed; install Go >= 1.23 to build tidb-server" >&2; exit 1; }
command -v cc >/dev/null || { echo "error: no C compiler (cc); install gcc to build tidb-server" >&2; exit 1; }

export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=1
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
PKG=github.com/pingcap/tidb/cmd/tidb-server
if [ "$VARIANT" = tiflash ]; then
  command -v patch >/dev/null || { echo "error: the patch tool is missing; install it to build the TiFlash variant" >&2; exit 1; }
  # Never a committed copy of TiDB's main.go: derive it from this exact module version.
  rm -rf "$W/tiflash"; mkdir -p "$W/tiflash"
  cp "$SRC/cmd/tidb-server/main.go" "$HERE/tiflash/mocktiflash.go" "$W/tiflash/"
  chmod u+w "$W/tiflash/"*.go
  patch --batch --quiet --no-backup-if-mismatch "$W/tiflash/main.go" "$HERE/tiflash/main.go.patch" >&2 \
    || { echo "error: tiflash/main.go.patch does not apply to TiDB $TIDB_VER" >&2; exit 1; }
  PKG=./tiflash
fi
echo "building $(basename "$BIN") $TIDB_VER with $(go env GOVERSION) (the first build takes about 15 min on 2 cores) ..." >&2
go build -tags codes -trimpath -o "$BIN.tmp" \
  -ldflags "-X github.com/pingcap/tidb/pkg/parser/mysql.TiDBReleaseVersion=$TIDB_LABEL -X github.com/pingcap/tidb/pkg/util/versioninfo.TiDBEdition=Community" \
  "$PKG"
"$BIN.tmp" -V >&2
mv "$BIN.tmp" "$BIN"
if [ "$VARIANT" = tiflash ]; then echo "$STAMP" > "$BIN.stamp"; fi
echo "$BIN"
