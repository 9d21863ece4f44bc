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

# build [--folder NAME] [--timeouts DOWNLOAD BUILD] [--in-copy] [--add-main FILE] TOOL VERSION MODULE PACKAGE
#   Builds PACKAGE of MODULE@VERSION into $root/NAME/TOOL (NAME defaults to TOOL-VERSION), each step bounded
#   (900 s each by default). --in-copy builds in a writable copy of the module with GOFLAGS=-mod=mod (the Kyverno
#   module's go.mod needs that); --add-main FILE puts FILE there as the main of PACKAGE (implies --in-copy).
build() {
  local folder="" download_timeout=900 build_timeout=900 in_copy=0 add_main=""
  while [ "${1#--}" != "$1" ]; do
    case "$1" in
      --folder) folder=$2; shift 2 ;;
      --timeouts) download_timeout=$2; build_timeout=$3; shift 3 ;;
      --in-copy) in_copy=1; shift ;;
      --add-main) add_main=$2; in_copy=1; shift 2 ;;
      *) echo "peers: build: unknown option $1" >&2; return 1 ;;
    esac
  done
  local tool=$1 version=$2 module=$3 package=$4
  local dir="$root/${folder:-$tool-$version}"
  if [ -x "$dir/$tool" ]; then return 0; fi
  local start src ok=1 go_env=(CGO_ENABLED=0)
  start=$(date +%s)
  rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
  # Not `go install pkg@version`: that also reads the module's version list (for deprecation notices), which
  # the proxy here refuses for some modules (403) although it serves the pinned version. Building inside the
  # downloaded module uses the module's own go.mod/go.sum, exactly what `go install` would.
  src=$(timeout "$download_timeout" go mod download -json "$module@$version" 2>"$dir.tmp/build.log" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p') && [ -n "$src" ] || ok=0
  if [ "$ok" = 1 ] && [ "$in_copy" = 1 ]; then
    cp -r "$src" "$dir.tmp/src" && chmod -R u+w "$dir.tmp/src" || ok=0
    if [ "$ok" = 1 ] && [ -n "$add_main" ]; then
      mkdir -p "$dir.tmp/src/$package" && cp "$add_main" "$dir.tmp/src/$package/" || ok=0
    fi
    src="$dir.tmp/src" go_env=(GOFLAGS=-mod=mod)
  fi
  if [ "$ok" = 1 ] \
    && (cd "$src" && env "${go_env[@]}" timeout "$build_timeout" go build -trimpath -o "$dir.tmp/$tool" "$package") \
      >>"$dir.tmp/build.log" 2>&1; then
    echo "$(( $(date +%s) - start ))" >"$dir.tmp/build-seconds"
    rm -rf "$dir.tmp/src" "$dir" && mv "$dir.tmp" "$dir"
    echo "peers: built $tool $version in $(cat "$dir/build-seconds")s" >&2
  else
    rm -rf "$dir.tmp/src"
    echo "peers: $tool $version did not build (tests needing it skip): $(tail -n 3 "$dir.tmp/build.log")" >&2
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
  # CI has 45 minutes: a cold build is ~13 min; at worst 5 + 20 min here before the tests that need it skip.
  build --folder "kyverno-check-$kyverno_version-$sum" --timeouts 300 1200 --add-main "$kyverno_src/main.go" \
    kyverno-check "$kyverno_version" github.com/kyverno/kyverno ./cmd/dct2notation-check
fi

# The whole Kyverno CLI, for `kyverno apply` against signatures we push (tests/test_admission_kyverno.py): opt-in with
# DCT2NOTATION_PEERS_SLOW=1, since a cold build takes longer than 15 minutes on 2 cores.
if [ "${DCT2NOTATION_PEERS_SLOW:-0}" = 1 ]; then
  build --timeouts 300 2400 --in-copy kyverno "$kyverno_version" github.com/kyverno/kyverno ./cmd/cli/kubectl-kyverno
fi

# Ratify v1.4.4's CLI (`ratify verify`, tests/test_admission_ratify.py): opt-in like the Kyverno CLI (11 minutes cold).
# The module answers under github.com/ratify-project/ratify; github.com/notaryproject/ratify@v1.4.4 is a 403 here.
if [ "${DCT2NOTATION_PEERS_SLOW:-0}" = 1 ]; then
  build ratify v1.4.4 github.com/ratify-project/ratify ./cmd/ratify
fi
exit 0
