#!/usr/bin/env bash
# The web page's end-to-end test drives Debian's headless Chromium: install it when missing.
# Needs root and apt (CI and the dev machines); elsewhere the test skips and says why.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "ensure-chromium: not root or no apt-get: the browser test will be skipped" >&2
  exit 0
fi
echo "ensure-chromium: installing Debian's chromium for the browser test" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null \
  || echo "ensure-chromium: install failed: the browser test will be skipped" >&2
exit 0
