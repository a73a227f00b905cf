#!/bin/bash
# Pictures of a model on real photos, one per photo task (docs/photos/<task>.png; README shows
# the bundled model's, for its shipped tasks): crops of Debian's mate-backgrounds nature photos
# (GPL-2+, see LICENSES.md), three context pairs and one query per task, crops that training
# never saw (these photos are lavin's held-out real set). Each is lavin run's (or lavin video's)
# --grid: the pairs, the query, the prediction.
#
#   apt-get install -y mate-backgrounds
#   bash docs/photos/make.sh [MODEL]
set -euo pipefail
model=${1:-lavin-small}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
lavin train examples --out "$work/tasks" --data photos:/usr/share/backgrounds/mate/nature --pairs 3 --queries 1
for folder in "$work"/tasks/*/; do
    task=$(basename "$folder")
    if [ -e "$folder/queries/q0.mp4" ]; then
        lavin video -m "$model" -c "$folder" -i "$folder/queries/q0.mp4" -o "$work/$task.mp4" --frames 4 --pairs 3 \
            --grid -q
    else
        lavin run -m "$model" -c "$folder" -i "$folder/queries/q0.png" -o "$work/$task.png" --pairs 3 --grid -q
    fi
    cp "$work/${task}_grid.png" "$here/$task.png"
done
echo "wrote $(ls "$here"/*.png | wc -l) pictures into $here"
