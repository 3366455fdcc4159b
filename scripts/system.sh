#!/usr/bin/env bash
# The system parts `npm test` needs besides node_modules (npm runs this as `pretest`; CI too, through
# `npm test`): Node as package.json's engines say, Debian's Chromium for the browser tests (browser
# downloads are not reachable), pydicom, DCMTK and GDCM to check that other toolkits read what we
# write (and, with OpenJPEG's opj_decompress, as reference decoders), dicom3tools' dciodvfy (IOD
# checks of the SR export), openssl, rsyslog with its TLS
# driver (the audit repository), Orthanc with socat, unshare and ip (a PACS in a network namespace of
# its own that pushes studies to the producer), PostgreSQL on
# 127.0.0.1:5432 with a database `test` (trust auth), and the shared DICOM samples. What is missing is installed or started when this runs as root with apt-get (as CI does);
# otherwise it stops at once with one line that names what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() {
  echo "npm test needs $1" >&2
  exit 1
}

# Node: the engines range of package.json (checked with Node itself, before anything else runs).
node -e '
  const want = require("./package.json").engines.node.match(/^>=(\d+)\.(\d+)/);
  const [maj, min] = process.versions.node.split(".").map(Number);
  if (maj < +want[1] || (maj === +want[1] && min < +want[2])) process.exit(1);
' || fail "Node $(node -p 'require("./package.json").engines.node') (this is $(node -v))"

# Each part: the check that it is there, and the Debian package that brings it.
missing=()
need() { eval "$1" >/dev/null 2>&1 || missing+=("$2"); }
check() {
  missing=()
  need '[ -x "${ZTV_CHROMIUM:-/usr/bin/chromium}" ]' chromium
  need '/usr/bin/python3 -c "import pydicom"' python3-pydicom
  need '/usr/bin/python3 -c "import numpy"' python3-numpy
  need 'command -v dcmdump && command -v dcmftest' dcmtk
  need 'command -v gdcmdump && command -v gdcminfo && command -v gdcmconv' libgdcm-tools
  need 'command -v opj_decompress' libopenjp2-tools
  need 'command -v openssl' openssl
  need 'command -v pg_dump' postgresql-client
  # dicom3tools' IOD checker judges the DICOM SR the viewer exports.
  need 'command -v dciodvfy' dicom3tools
  # The audit repository the syslog forwarding is tested against, with its TLS driver.
  need 'command -v rsyslogd' rsyslog
  need 'ls /usr/lib/*/rsyslog/lmnsd_gtls.so' rsyslog-gnutls
  # A real PACS pushing to the producer: Orthanc in a network namespace of its own, relayed by socat.
  need 'command -v Orthanc' orthanc
  need 'command -v socat' socat
  need 'command -v unshare' util-linux
  need 'command -v ip' iproute2
}
check
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  check
fi
[ ${#missing[@]} -eq 0 ] || fail "these Debian packages: sudo apt-get install ${missing[*]}"

# PostgreSQL (the storage tests run on it as well as on SQLite): started if installed but stopped,
# the database created if missing — as root, where the cluster can be started.
url=${ZTV_TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
pg_ok() { psql "$url" -Atqc 'select 1' >/dev/null 2>&1; }
if ! pg_ok && [ -z "${ZTV_TEST_DATABASE_URL:-}" ] && [ "$(id -u)" = 0 ] && command -v pg_isready >/dev/null; then
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    ver=$(ls /etc/postgresql 2>/dev/null | head -n1)
    [ -n "$ver" ] && pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
  fi
  psql -h 127.0.0.1 -U postgres -qc 'create database test' >/dev/null 2>&1 || true
fi
command -v psql >/dev/null || fail "PostgreSQL's client and server: sudo apt-get install postgresql"
pg_ok || fail "PostgreSQL answering at $url (trust auth), or ZTV_TEST_DATABASE_URL set to one"

# The real DICOM samples, read where they are (src/cli/samples.ts), never copied here.
samples=${ZTV_SAMPLES:-$(dirname "$PWD")/shared/dicom-samples}
[ -f "$samples/MANIFEST.md" ] || fail "the DICOM samples in $samples, or ZTV_SAMPLES set to them"
