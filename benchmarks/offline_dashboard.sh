#!/usr/bin/env bash
# Copy asv's published dashboard (.asv/html) to DEST with its CDN scripts and styles
# replaced by local copies from the npm registry, for machines that reach package
# registries but no CDN (asv's pages load jQuery, flot, bootstrap, ... from CDNs and show
# "Can not determine continental origin of swallow" without them).
#   asv publish && bash benchmarks/offline_dashboard.sh /tmp/asv-offline
#   python3 -m http.server -d /tmp/asv-offline 8765 --bind 127.0.0.1
set -euo pipefail
SRC=${HTML_DIR:-.asv/html}
DEST=${1:?usage: offline_dashboard.sh DEST}
rm -rf "$DEST" && cp -r "$SRC" "$DEST" && mkdir -p "$DEST/vendor"
tmp=$(mktemp -d)
( cd "$tmp"
  for p in jquery@3.3.1 flot@0.8.3 flot-orderbars@1.0.0 blueimp-md5@2.19.0 bootstrap@3.1.1 \
           stupid-table-plugin@1.1.3; do
    f=$(npm pack "$p" --silent | tail -1); mkdir -p "${f%.tgz}"; tar xzf "$f" -C "${f%.tgz}"
  done )
cp "$tmp"/jquery-3.3.1/package/dist/jquery.min.js \
   "$tmp"/flot-0.8.3/package/jquery.flot{,.time,.selection,.categories}.js \
   "$tmp"/flot-orderbars-1.0.0/package/js/jquery.flot.orderBars.js \
   "$tmp"/blueimp-md5-2.19.0/package/js/md5.min.js \
   "$tmp"/bootstrap-3.1.1/package/dist/js/bootstrap.min.js \
   "$tmp"/bootstrap-3.1.1/package/dist/css/bootstrap.min.css \
   "$tmp"/stupid-table-plugin-1.1.3/package/stupidtable.min.js "$DEST/vendor/"
rm -rf "$tmp"
python3 - "$DEST" <<'PY'
import pathlib, re, sys
local = {"jquery-3.3.1.min.js": "jquery.min.js", "jquery.flot.min.js": "jquery.flot.js",
         "jquery.flot.time.min.js": "jquery.flot.time.js",
         "jquery.flot.selection.min.js": "jquery.flot.selection.js",
         "jquery.flot.categories.min.js": "jquery.flot.categories.js"}
for page in pathlib.Path(sys.argv[1]).rglob("*.html"):
    text = page.read_text()
    def repl(m):
        name = m.group(2).rsplit("/", 1)[1]
        return f'{m.group(1)}="vendor/{local.get(name, name)}"'
    text = re.sub(r'(src|href)="(https://(?:code\.jquery\.com|cdnjs\.cloudflare\.com|cdn\.jsdelivr\.net)/[^"]+)"',
                  repl, text)
    text = re.sub(r'\s(integrity|crossorigin|referrerpolicy)="[^"]*"', "", text)
    page.write_text(text)
PY
echo "offline dashboard in $DEST"
