#!/usr/bin/env bash
# The asv dashboard: benchmark a few recent commits, publish asv's HTML and take a screenshot of it for the README.
#
#   benchmarks/dashboard.sh [RANGE]
#
# Without RANGE: the last DASHBOARD_COMMITS commits. With RANGE (a git range such as HEAD~10..HEAD): its
# first-parent history thinned to DASHBOARD_COMMITS evenly spaced commits, the newest and the oldest included. Each
# commit is built in its own virtualenv by asv (asv.conf.json); benchmarks already measured on this machine are not
# run again, so a later run only adds the new commits.
#
# Settings (environment):
#   DASHBOARD_COMMITS  commits to benchmark (default 3)
#   DASHBOARD_BENCH    asv -b regex of the benchmarks (default: the pair SDPs, their proofs and certification)
#   DASHBOARD_FULL=1   asv's own repeats instead of one sample per benchmark (slower, steadier graphs)
#   DASHBOARD_URL      page to screenshot, relative to the published HTML (default: the graph of the 45 pair SDPs,
#                      AllPairs at hidden = 500, one line per net and thread count; '' for the summary grid)
#   DASHBOARD_PNG      where the screenshot goes (default ../docs/images/asv-dashboard.png)
#   ASV, CHROMIUM      the commands (default asv, and chromium or chromium-browser)
#
# Needs asv (pip install asv virtualenv), a headless Chromium and, to show asv's pages without internet access, the
# JavaScript libraries they load (Debian: apt-get install chromium libjs-jquery libjs-jquery-flot libjs-bootstrap
# node-blueimp-md5 libjs-jquery-stupidtable). Time on the busy 2-core development machine: 5-8 min per commit (the
# wheel build is most of it), plus one build of the newest commit for asv to find the benchmarks.
set -euo pipefail
cd "$(dirname "$0")"  # benchmarks/: asv.conf.json is here

commits=${DASHBOARD_COMMITS:-3}
bench=${DASHBOARD_BENCH:-'AllPairs|Certify'}
png=${DASHBOARD_PNG:-../docs/images/asv-dashboard.png}
asv=${ASV:-asv}
chromium=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}
[ -n "$chromium" ] || { echo "no chromium found: apt-get install chromium, or set CHROMIUM" >&2; exit 1; }

# The commits: first-parent history of RANGE (newest first), thinned to $commits evenly spaced ones.
if [ $# -ge 1 ]; then
  mapfile -t history < <(git rev-list --first-parent "$1")
else
  mapfile -t history < <(git rev-list --first-parent -n "$commits" HEAD)
fi
[ ${#history[@]} -gt 0 ] || { echo "no commits in ${1:-HEAD}" >&2; exit 1; }
hashfile=$(mktemp)
server_pid=""
cleanup() {
  rm -f "$hashfile"
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; fi
}
trap cleanup EXIT
n=${#history[@]}
take=$(( commits < n ? commits : n ))
for ((i = 0; i < take; i++)); do
  # index 0 is the newest; with take > 1 the oldest of the range is the last one taken
  idx=$(( take > 1 ? i * (n - 1) / (take - 1) : 0 ))
  echo "${history[$idx]}"
done | awk '!seen[$0]++' > "$hashfile"
echo "benchmarking $(wc -l < "$hashfile") commit(s):"
git log --no-walk=unsorted --format='  %h %s' $(cat "$hashfile")

# One sample per benchmark unless DASHBOARD_FULL: enough for a trend across commits on a quiet machine, and what
# keeps the default run short. (asv's --quick would not save its results, so the attributes are set instead.)
quick=(-a repeat=1 -a rounds=1 -a warmup_time=0)
if [ "${DASHBOARD_FULL:-0}" = 1 ]; then quick=(); fi

[ -f "$HOME/.asv-machine.json" ] || "$asv" machine --yes
# asv exits non-zero when any benchmark failed; the dashboard is still worth publishing then (failures show in it).
"$asv" run --show-stderr --skip-existing-successful -b "$bench" "${quick[@]}" "HASHFILE:$hashfile" || \
  echo "asv run reported failures (see above); publishing what was measured" >&2
"$asv" publish

html=$(python -c "import json, re; print(json.loads(re.sub(r'^\s*//.*$', '', open('asv.conf.json').read(), flags=re.M))['html_dir'])")

# asv's index.html loads jQuery, flot, Bootstrap, stupidtable and blueimp-md5 from CDNs, which machines that reach
# only package registries cannot fetch (the page then shows nothing but an error). Point it at Debian's packaged
# copies instead (apt-get install libjs-jquery libjs-jquery-flot libjs-bootstrap node-blueimp-md5
# libjs-jquery-stupidtable), copied next to it, so the screenshot and `asv preview` work offline. The flot orderBars
# plugin has no package; without it only grouped bar charts lose their side-by-side order. (Run again after each
# `asv publish`, which writes asv's own index.html back.)
python - "$html" "${DASHBOARD_JS_DIR:-/usr/share/javascript}" <<'PY' || true  # without the packages: CDN links kept
import re
import shutil
import sys
from pathlib import Path

html, packaged = Path(sys.argv[1]), Path(sys.argv[2])
local = {  # file name in the CDN URL -> the packaged copy
    "jquery-3.3.1.min.js": "jquery/jquery.min.js",
    "jquery.flot.min.js": "jquery-flot/jquery.flot.min.js",
    "jquery.flot.time.min.js": "jquery-flot/jquery.flot.time.min.js",
    "jquery.flot.selection.min.js": "jquery-flot/jquery.flot.selection.min.js",
    "jquery.flot.categories.min.js": "jquery-flot/jquery.flot.categories.min.js",
    "stupidtable.min.js": "jquery-stupidtable/stupidtable.min.js",
    "md5.min.js": "blueimp-md5/md5.min.js",
    "bootstrap.min.js": "bootstrap/js/bootstrap.min.js",
    "bootstrap.min.css": "bootstrap/css/bootstrap.min.css",
}
missing = [f for f in local.values() if not (packaged / f).is_file()]
if missing:
    sys.exit(f"kept asv's CDN links (the screenshot needs internet access then): no {', '.join(missing)} in {packaged}")
(html / "vendor").mkdir(exist_ok=True)
for name, rel in local.items():
    shutil.copyfile(packaged / rel, html / "vendor" / name)


def offline(url: str, kind: str) -> str:
    name = url.rsplit("/", 1)[-1]
    if name not in local:
        return ""  # no packaged copy (orderBars): leave the plugin out rather than fail the page
    if kind == "script":
        return f'<script src="vendor/{name}"></script>'
    return f'<link rel="stylesheet" href="vendor/{name}">'


page = html / "index.html"
text = re.sub(r'<script\s[^>]*src="(https://[^"]+)"[^>]*>\s*</script>', lambda m: offline(m[1], "script"),
              page.read_text())
text = re.sub(r'<link\s[^>]*href="(https://[^"]+\.css)"[^>]*>', lambda m: offline(m[1], "link"), text)
# Debian's flot is 4.x, not asv's 0.8: it draws the axis labels itself (asv's plugin for 0.8 would draw them a second
# time) and leaves the fill of the legend's SVG background to the page's CSS (black without it); its legend box is
# sized for narrower labels than asv's.
text = re.sub(r'<script[^>]*src="jquery\.flot\.axislabels\.js"[^>]*>\s*</script>\s*', "", text)
legend_css = (".legendLayer .background { fill: rgba(255, 255, 255, 0.85); stroke: rgba(0, 0, 0, 0.85); stroke-width: 1; }"
              " .legend { width: auto !important; min-width: 22em; }")
text = text.replace("</head>", f"<style>{legend_css}</style>\n</head>", 1)
page.write_text(text)
PY

# asv's pages load their JSON over HTTP (not file://), so serve the HTML on a free local port for the screenshot.
port=$(python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
python -m http.server "$port" --bind 127.0.0.1 --directory "$html" > /dev/null 2>&1 &
server_pid=$!
for _ in $(seq 50); do
  python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/')" 2>/dev/null && break
  sleep 0.2
done

mkdir -p "$(dirname "$png")"
sandbox=()
if [ "$(id -u)" = 0 ]; then sandbox=(--no-sandbox); fi  # Chromium refuses to run as root with its sandbox
# The virtual time budget lets the page's scripts fetch the results and draw the graphs before the capture.
"$chromium" --headless "${sandbox[@]}" --disable-gpu --hide-scrollbars --window-size=1400,900 \
  --virtual-time-budget=20000 --screenshot="$(realpath -m "$png")" \
  "http://127.0.0.1:$port/${DASHBOARD_URL-#bench_sdp.AllPairs.time_all_pairs?p-hidden=500}" 2> /dev/null
echo "wrote $png (dashboard: $html/index.html; browse it with: cd benchmarks && asv preview)"
