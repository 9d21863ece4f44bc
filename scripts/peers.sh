#!/usr/bin/env bash
# Builds the real peer tools the interop tests run against, from the Go module proxy, each pinned to a
# version, into ${DCT2NOTATION_PEERS:-${XDG_CACHE_HOME:-~/.cache}/dct2notation-peers}/<tool>-<version>/.
# A folder that already holds its binary is not rebuilt (CI caches the folder). A peer that does not
# build is reported and skipped: the tests that need it then skip naming the missing binary, so one
# unavailable module never fails the whole run. Without Go nothing is built and those tests skip.
set -uo pipefail
cd "$(dirname "$0")/.."

root="${DCT2NOTATION_PEERS:-${XDG_CACHE_HOME:-$HOME/.cache}/dct2notation-peers}"
mkdir -p "$root"
if ! command -v go >/dev/null 2>&1; then
  echo "peers: go not on PATH; interop tests will skip" >&2
  exit 0
fi

build() {  # tool version module package
  local dir="$root/$1-$2"
  if [ -x "$dir/$1" ]; then return 0; fi
  local start end src
  start=$(date +%s)
  mkdir -p "$dir.tmp"
  # Not `go install pkg@version`: that also reads the module's version list (for deprecation notices), which
  # the proxy here refuses for some modules (403) although it serves the pinned version. Building inside the
  # downloaded module uses the module's own go.mod/go.sum, exactly what `go install` would.
  if src=$(timeout 900 go mod download -json "$3@$2" 2>"$dir.tmp/build.log" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') \
    && [ -n "$src" ] \
    && (cd "$src" && CGO_ENABLED=0 timeout 900 go build -trimpath -o "$dir.tmp/$1" "$4") >>"$dir.tmp/build.log" 2>&1; then
    end=$(date +%s)
    echo "$((end - start))" >"$dir.tmp/build-seconds"
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
    echo "peers: built $1 $2 in $((end - start))s" >&2
  else
    echo "peers: $1 $2 did not build (tests needing it skip): $(tail -n 3 "$dir.tmp/build.log")" >&2
  fi
}

while read -r tool version module package; do
  case "$tool" in ''|'#'*) continue ;; esac
  build "$tool" "$version" "$module" "$package"
done <scripts/peers.txt

# The plugin the KMS-plugin tests drive: a tiny main over notation-plugin-framework-go, kept in tests/support.
plugin_src="tests/support/notation_plugin"
if [ -d "$plugin_src" ]; then
  sum=$(cat "$plugin_src"/*.go "$plugin_src"/go.mod "$plugin_src"/go.sum 2>/dev/null | sha256sum | cut -c1-12)
  dir="$root/plugin-$sum"
  if [ ! -x "$dir/notation-gokms" ]; then
    mkdir -p "$dir.tmp"
    start=$(date +%s)
    if (cd "$plugin_src" && CGO_ENABLED=0 go build -trimpath -o "$dir.tmp/notation-gokms" .) >"$dir.tmp/build.log" 2>&1; then
      echo "$(( $(date +%s) - start ))" >"$dir.tmp/build-seconds"
      rm -rf "$dir" && mv "$dir.tmp" "$dir"
    else
      echo "peers: test plugin did not build: $(tail -n 3 "$dir.tmp/build.log")" >&2
    fi
  fi
fi

# Kyverno's own admission checks over what `policy` emits (tests/support/kyverno_check): built inside the downloaded
# kyverno module, because `go install .../kubectl-kyverno@v1.19.0` is refused ("The go.mod file for the module
# providing named packages contains one or more replace directives") and the whole CLI does not build in 15 minutes
# here. The folder name carries the pin and the source hash.
kyverno_src="tests/support/kyverno_check"
kyverno_version="v1.19.0"
if [ -f "$kyverno_src/main.go" ]; then
  sum=$(sha256sum "$kyverno_src/main.go" | cut -c1-12)
  dir="$root/kyverno-check-$kyverno_version-$sum"
  if [ ! -x "$dir/kyverno-check" ]; then
    # CI has 45 minutes: a cold build is ~13 min; at worst 5 + 20 min here before the tests that need it skip.
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    start=$(date +%s)
    if src=$(timeout 300 go mod download -json "github.com/kyverno/kyverno@$kyverno_version" 2>"$dir.tmp/build.log" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') && [ -n "$src" ] \
      && cp -r "$src" "$dir.tmp/src" && chmod -R u+w "$dir.tmp/src" \
      && mkdir -p "$dir.tmp/src/cmd/dct2notation-check" && cp "$kyverno_src/main.go" "$dir.tmp/src/cmd/dct2notation-check/" \
      && (cd "$dir.tmp/src" && GOFLAGS=-mod=mod timeout 1200 go build -trimpath -o "$dir.tmp/kyverno-check" \
        ./cmd/dct2notation-check) >>"$dir.tmp/build.log" 2>&1; then
      echo "$(( $(date +%s) - start ))" >"$dir.tmp/build-seconds"
      rm -rf "$dir.tmp/src" && rm -rf "$dir" && mv "$dir.tmp" "$dir"
      echo "peers: built kyverno-check $kyverno_version in $(cat "$dir/build-seconds")s" >&2
    else
      rm -rf "$dir.tmp/src"
      echo "peers: kyverno-check did not build (tests needing it skip): $(tail -n 3 "$dir.tmp/build.log")" >&2
    fi
  fi
fi

# The whole Kyverno CLI, for `kyverno apply` against signatures we push (tests/test_admission_kyverno.py): opt-in with
# DCT2NOTATION_PEERS_SLOW=1, since a cold build takes longer than 15 minutes on 2 cores.
if [ "${DCT2NOTATION_PEERS_SLOW:-0}" = 1 ]; then
  dir="$root/kyverno-$kyverno_version"
  if [ ! -x "$dir/kyverno" ]; then
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    start=$(date +%s)
    if src=$(timeout 300 go mod download -json "github.com/kyverno/kyverno@$kyverno_version" 2>"$dir.tmp/build.log" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') && [ -n "$src" ] \
      && cp -r "$src" "$dir.tmp/src" && chmod -R u+w "$dir.tmp/src" \
      && (cd "$dir.tmp/src" && GOFLAGS=-mod=mod timeout 2400 go build -trimpath -o "$dir.tmp/kyverno" \
        ./cmd/cli/kubectl-kyverno) >>"$dir.tmp/build.log" 2>&1; then
      echo "$(( $(date +%s) - start ))" >"$dir.tmp/build-seconds"
      rm -rf "$dir.tmp/src" && rm -rf "$dir" && mv "$dir.tmp" "$dir"
      echo "peers: built kyverno $kyverno_version in $(cat "$dir/build-seconds")s" >&2
    else
      rm -rf "$dir.tmp/src"
      echo "peers: kyverno $kyverno_version did not build (tests needing it skip): $(tail -n 3 "$dir.tmp/build.log")" >&2
    fi
  fi
fi

# Ratify v1.4.4's CLI (`ratify verify`, tests/test_admission_ratify.py): opt-in like the Kyverno CLI (11 minutes cold).
# The module answers under github.com/ratify-project/ratify; github.com/notaryproject/ratify@v1.4.4 is a 403 here.
if [ "${DCT2NOTATION_PEERS_SLOW:-0}" = 1 ]; then
  build ratify v1.4.4 github.com/ratify-project/ratify ./cmd/ratify
fi
exit 0
