#!/usr/bin/env bash
# Run every example task in one go: each folder of examples/ with <id>_input/<id>_target pairs is a
# task; its queries/ are answered in one batch per task, by `lavin video` where the folder's
# task.json says "kind": "video", else by `lavin run`. Extra arguments go to both.
#   usage: examples/run_all.sh OUT_DIR [options, e.g. --model DIR --steps 20]
set -euo pipefail
out=${1:?output folder}
shift
here=$(cd "$(dirname "$0")" && pwd)
for task in "$here"/*/; do
  name=$(basename "$task")
  compgen -G "$task*_input.*" > /dev/null || continue
  command=run
  grep -qs '"kind": *"video"' "$task/task.json" && command=video
  lavin "$command" --context "$task" --query "$task/queries" -o "$out/$name" --overwrite --quiet "$@"
  echo "$name -> $out/$name"
done
