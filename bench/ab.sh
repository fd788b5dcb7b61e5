#!/usr/bin/env bash
# Same-hour A/B of two commits: each in its own git worktree, the benchmark's "ours" run on one
# and then the other, ROUNDS times. Single runs on a 2-core box are noisy; compare the rounds'
# medians, never two single runs.
#
#   bench/ab.sh BEFORE AFTER [ROUNDS] [LEVELS]        e.g. bench/ab.sh aba1e52 HEAD 3 25,100
#
# Prints each level's summary line; the JSON of each run goes to $AB_OUT (default
# /tmp/bench-ab) as <commit>-<round>.json. $AB_ARGS is passed on to the benchmark, e.g.
# AB_ARGS="--answer-chars 8" for a load of questions more than tokens. Needs what `make bench`
# needs.
set -euo pipefail
before=$(git rev-parse --short "$1")
after=$(git rev-parse --short "$2")
rounds=${3:-3}
levels=${4:-25,100}
out=${AB_OUT:-/tmp/bench-ab}
mkdir -p "$out"
for commit in "$before" "$after"; do
  tree="$out/tree-$commit"
  if [ ! -d "$tree" ]; then
    git worktree add --detach -q "$tree" "$commit"
    (cd "$tree" && uv sync -q --all-packages)
  fi
done
for round in $(seq 1 "$rounds"); do
  for commit in "$before" "$after"; do
    (cd "$out/tree-$commit" &&
      uv run python -m bench --levels "$levels" --repeats 1 --systems ours \
        --out "$out" --name "$commit-$round" ${AB_ARGS:-} 2>&1 | grep "delivered" | sed "s/^/$commit /")
  done
done
echo "worktrees: $out/tree-*; remove them with: git worktree remove --force <path>"
