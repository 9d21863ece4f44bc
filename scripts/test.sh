#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: installs the real servers and the package, then
# lints, type-checks and runs pytest. README's second command; .ci/run calls it unchanged.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=""
# chromium renders REPORT.html (tests/test_report_html.py); faketime moves the clock past a certificate's expiry
# for the timestamp tests (tests/test_policy_timestamp.py).
for bin in notary notary-server docker-registry htpasswd openssl chromium faketime; do
  command -v "$bin" >/dev/null 2>&1 || need_apt=1
done
if [ -n "$need_apt" ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq notary docker-registry apache2-utils openssl chromium faketime >/dev/null
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"

# The real Notation, ORAS and Referrers-API registry for tests/test_interop_*.py (cached; never fails the run).
bash scripts/peers.sh

python3 -m ruff check dct2notation tests bench scripts fixtures
python3 -m mypy --strict dct2notation
python3 -m pytest "$@"
