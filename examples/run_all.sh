#!/usr/bin/env bash
# Run every example task in one go: each folder of examples/ with <id>_input/<id>_target pairs is a
# task; its queries/ are answered in one batch per task. Extra arguments go to `lavin run`.
#   usage: examples/run_all.sh OUT_DIR [lavin run options, e.g. --model DIR --steps 20]
set -euo pipefail
out=${1:?output folder}
shift
here=$(cd "$(dirname "$0")" && pwd)
for task in "$here"/*/; do
  name=$(basename "$task")
  compgen -G "$task*_input.*" > /dev/null || continue
  queries="$task/queries"
  [ -d "$queries" ] || queries="$here/queries"
  lavin run --context "$task" --query "$queries" -o "$out/$name" --overwrite --quiet "$@"
  echo "$name -> $out/$name"
done
