#!/usr/bin/env bash
# The whole DCT -> Notation migration on the demo estate in fixtures/demo, with no servers:
# archive -> inventory -> test key -> signers.toml -> plan -> sign (OCI layout) -> policy -> check -> signoff -> verify.
# Usage: scripts/demo.sh [WORKDIR]   (default: a new temp dir; the fixtures are never modified)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEMO="$ROOT/fixtures/demo"
WORK="${1:-$(mktemp -d -t dct2notation-demo.XXXXXX)}"
PYTHON="${PYTHON:-python3}"

# `import dct2notation` proves nothing from the repo root (the source folder is on sys.path): test the installed
# distributions pyproject.toml requires, and install the package when any is missing or too old.
MISSING="$("$PYTHON" "$ROOT/scripts/missing_deps.py" "$ROOT/pyproject.toml")"
if [ -n "$MISSING" ]; then
  echo "installing dct2notation (pip install -e $ROOT): missing $(echo "$MISSING" | paste -sd, -)" >&2
  if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    echo "demo.sh: $PYTHON has no pip; run it in a virtualenv (python3 -m venv .venv && . .venv/bin/activate)" >&2
    exit 2
  fi
  "$PYTHON" -m pip install -q --disable-pip-version-check -e "$ROOT" >&2
fi
# The demo runs this checkout's code whatever else is installed.
d2n() { PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m dct2notation "$@"; }

mkdir -p "$WORK"
# notary-server signs timestamp.json for 14 days and notary 0.7 cannot lengthen it: DCT is evaluated at the instant
# the estate was generated (fixtures/README.md). Notation verification uses the real clock.
AT="$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["evaluate_at"])' "$DEMO/expected.json")"
mapfile -t GUNS < <("$PYTHON" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["guns"]))' "$DEMO/expected.json")

# Sign a copy: the fixture layout stays byte-identical (tests/test_fixtures_drift.py).
rm -rf "$WORK/oci-layout"
cp -R "$DEMO/oci-layout" "$WORK/oci-layout"
export NOTATION_CONFIG="$WORK/notation"

echo "1/9 archive the DCT metadata" >&2
rm -rf "$WORK/archive"
d2n archive "${GUNS[@]}" --trust-dir "$DEMO/trust" --at "$AT" -o "$WORK/archive"

echo "2/9 inventory from the archive" >&2
d2n inventory "${GUNS[@]}" --archive "$WORK/archive" --at "$AT" --json >"$WORK/inventory.json"

echo "3/9 test signing key" >&2
if [ ! -f "$NOTATION_CONFIG/localkeys/demo-signer.key" ]; then
  d2n cert generate-test demo-signer --key-type ec-p256 --days 30 --default >&2
fi

echo "4/9 signer mapping" >&2
cat >"$WORK/signers.toml" <<'EOF'
# Every DCT signer of the demo GUNs (Repo Admin, releases, alice, bob) hands its authority to one Notation key.
[[signer]]
gun = "registry.demo.local/*"
role = "*"
key = "demo-signer"
cert_file = "notation/localkeys/demo-signer.crt"
EOF

echo "5/9 plan" >&2
d2n plan "$WORK/inventory.json" --signers "$WORK/signers.toml" --oci-layout "$WORK/oci-layout" -o "$WORK/plan.json"

echo "6/9 sign into the OCI layout" >&2
rm -f "$WORK/journal.db"
d2n sign "$WORK/plan.json" --inventory "$WORK/inventory.json" --oci-layout "$WORK/oci-layout" \
  --journal "$WORK/journal.db" >"$WORK/sign.json"

echo "7/9 trust policy and trust store" >&2
rm -rf "$WORK/policy"
d2n policy "$WORK/inventory.json" --signers "$WORK/signers.toml" -o "$WORK/policy"

echo "8/9 coexistence check" >&2
d2n check --inventory "$WORK/inventory.json" --policy "$WORK/policy/trustpolicy.json" \
  --truststore "$WORK/policy/truststore" --oci-layout "$WORK/oci-layout" --json >"$WORK/check.json"

echo "9/9 sign-off bundle and its offline re-verification" >&2
rm -rf "$WORK/bundle"
d2n signoff --archive "$WORK/archive" --inventory "$WORK/inventory.json" --plan "$WORK/plan.json" \
  --journal "$WORK/journal.db" --policy-dir "$WORK/policy" --check-json "$WORK/check.json" \
  --oci-layout "$WORK/oci-layout" -o "$WORK/bundle" >&2
echo "bundle: $WORK/bundle (REPORT.md, REPORT.html)" >&2
d2n signoff verify "$WORK/bundle"
