#!/usr/bin/env bash
# The browser test needs Debian's chromium (Playwright drives it through executablePath; no browser download).
# Installs it with apt when we are root and it is missing; otherwise says how, and the browser test skips.
set -u
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Debian's chromium for the browser test (apt-get)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "[setup] could not install chromium: the browser test will be skipped"
else
  echo "[setup] chromium not found: install it (sudo apt-get install chromium) to run the browser test; it will be skipped"
fi
exit 0
