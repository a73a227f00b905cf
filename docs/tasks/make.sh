#!/bin/bash
# README's pictures of the bundled model, one per shipped task (docs/tasks/<task>.png): the
# task's example folder as context, its first query, lavin run's (or lavin video's) --grid, the
# defaults otherwise: three context pairs (two clip pairs for video), the query, the prediction.
#
#   bash docs/tasks/make.sh [MODEL]
set -euo pipefail
model=${1:-lavin-small}
here=$(cd "$(dirname "$0")" && pwd)
examples=$(cd "$here/../../examples" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for folder in "$examples"/*/; do
    task=$(basename "$folder")
    if [ -e "$folder/queries/q0.mp4" ]; then
        lavin video -m "$model" --task "$task" -i "$folder/queries/q0.mp4" -o "$work/$task.mp4" --pairs 2 --grid -q
    elif [ -e "$folder/queries/q0.png" ]; then
        lavin run -m "$model" --task "$task" -i "$folder/queries/q0.png" -o "$work/$task.png" --pairs 3 --grid -q
    else
        continue
    fi
    cp "$work/${task}_grid.png" "$here/$task.png"
done
echo "wrote $(ls "$here"/*.png | wc -l) pictures into $here"
