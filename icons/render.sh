#!/usr/bin/env bash
# Rasterises the committed SVG sources into the PNGs the app embeds (run after editing an SVG;
# the PNGs are committed too so building never needs rsvg-convert).
#   tray state icons: src/<state>.svg -> tray/<state>-32.png, tray/<state>-64.png
#   app icons:        src/app.svg     -> 32x32.png, 128x128.png, icon.png (512)
set -euo pipefail
cd "$(dirname "$0")"
command -v rsvg-convert >/dev/null || { echo "render.sh: needs rsvg-convert (apt-get install librsvg2-bin)" >&2; exit 1; }
mkdir -p tray
for state in gpu partial cpu warming down unknown; do
  for size in 32 64; do
    rsvg-convert -w "$size" -h "$size" "src/$state.svg" -o "tray/$state-$size.png"
  done
done
rsvg-convert -w 32 -h 32 src/app.svg -o 32x32.png
rsvg-convert -w 128 -h 128 src/app.svg -o 128x128.png
rsvg-convert -w 512 -h 512 src/app.svg -o icon.png
