#!/usr/bin/env bash
# The 2D tables at the papers' protocol on one GPU, packed: Soft-IntroVAE Table 2 with its best
# hyperparameters (benchmarks/toy2d_best.toml, 60 runs), the prior-learning paper's Table 1
# (toy2d_prior.toml, 120 runs) and its Table 3 hyperparameters (toy2d_replicated.toml, 20 runs); every
# run 30,000 iterations, 5 seeds. Finished runs go into benchmarks/results/<name>/ with their
# leaderboards (ours beside the published columns, with verdicts).
#
#   bash benchmarks/reproduce_2d.sh                 # all three files
#   bash benchmarks/reproduce_2d.sh toy2d_best      # one of them
#
# Rerunning continues: runs already in benchmarks/results/ or in sweeps/ are skipped, and an
# interrupted run continues from its last resume point (--resume-every applies to runs trained alone;
# a pack restarts its unfinished members). Environment: INTROZOO_DEVICE (cuda), INTROZOO_PACK (auto),
# WHEELS (a folder of wheels to install offline first, e.g. pydantic on a machine without a registry),
# RESULTS (benchmarks/results) and SWEEP_ARGS (more sweep options): a quick check of the script itself,
#   RESULTS=/tmp/r SWEEP_ARGS="-n 20 --seeds 1" INTROZOO_DEVICE=cpu INTROZOO_PACK=4 bash benchmarks/reproduce_2d.sh
set -euo pipefail
cd "$(dirname "$0")/.."
results=${RESULTS:-benchmarks/results}
device=${INTROZOO_DEVICE:-cuda}
pack=${INTROZOO_PACK:-auto}
if [ -n "${WHEELS:-}" ]; then
  python -m pip install -q --no-index --find-links "$WHEELS" pydantic pydantic-core annotated-types typing-inspection
  python -m pip install -q --no-index --no-deps --no-build-isolation -e .
fi
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(toy2d_best toy2d_replicated toy2d_prior)
for name in "${names[@]}"; do
  file=benchmarks/$name.toml
  [ -f "$file" ] || { echo "no sweep file $file" >&2; exit 2; }
  start=$(date +%s)
  # shellcheck disable=SC2086
  echo "== $name: $(python -m introzoo.cli sweep "$file" --dry-run ${SWEEP_ARGS:-} | tail -1)"
  # runs already committed are skipped: train into the results store itself
  # shellcheck disable=SC2086
  python -m introzoo.cli sweep "$file" --device "$device" --pack "$pack" --out "$results/$name" -q ${SWEEP_ARGS:-} \
    || echo "warning: some runs of $name failed (their reasons are in their metrics.json)" >&2
  python benchmarks/results/update.py "$file" --from "$results/$name" --dest "$results/$name"
  echo "== $name: $(( $(date +%s) - start )) s on $device ($(python -c 'import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")'))"
done
