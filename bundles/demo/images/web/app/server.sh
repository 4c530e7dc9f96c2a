#!/bin/sh
# Serves the static page on :8080 with the httpd applet of a busybox base, when there is one.
set -eu
echo "demo web starting: log level ${DEMO_LOG_LEVEL:-info}, static files in ${DEMO_STATIC_DIR:-/app/static}"
exec httpd -f -v -p 8080 -h "${DEMO_STATIC_DIR:-/app/static}"
