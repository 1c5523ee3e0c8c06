#!/usr/bin/env bash
# The text table of docs/results.md: MiniLM-L6-v2 on the 4-task standard CL benchmark (class-IL),
# O-LoRA's three task orders (Yelp for Yahoo), one seed each, a budget that fits 2 CPU cores:
# 128 training and 64 test examples per task, 2 epochs, batch 16, max_length 64, Adam (the encoder at
# 1e-4, its new head at 1e-2).
#
#     bash benchmarks/text_table.sh [OUT]        # OUT defaults to measure/text; resumes after a kill
#     .venv/bin/python benchmarks/text_table.py OUT/retain.db
#
# Needs the model: python scripts/fetch-models.py (models/minilm-l6-v2).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-measure/text}"
RETAIN=".venv/bin/retain"
COMMON=(--benchmark text-cl --backbone hf:models/minilm-l6-v2 --data-dir "${TEXT_CL:-../shared/data/text-cl}"
        --benchmark-option train_per_task=128 --benchmark-option test_per_task=64
        --benchmark-option max_length=64 --epochs 2 --seeds 1 --out "$OUT" --quiet)
for stream in standard-1 standard-2 standard-3; do
  S=(--benchmark-option "stream=$stream")
  # full fine-tuning: naive, replay, regularisers and the joint upper bound
  "$RETAIN" run "${COMMON[@]}" "${S[@]}" --lr 1e-4 --strategy naive --strategy er --strategy derpp \
      --strategy ewc --strategy lwf --strategy joint --buffer-size 200 --replay-batch-size 16 \
      --fisher empirical --fisher-samples 128 --ewc-lambda 1000 --no-report
  # sequential LoRA (PEFT, r 8, alpha 16 on query and value): the encoder's weights fixed; head at 1e-2 too
  "$RETAIN" run "${COMMON[@]}" "${S[@]}" --lr 1e-3 --strategy naive --backbone-option mode=lora \
      --backbone-option head_lr_scale=10 --no-report
  # frozen sentence features: SimpleCIL (class means, cosine) and RanPAC (random projection, ridge)
  "$RETAIN" run "${COMMON[@]}" "${S[@]}" --strategy ranpac --projection-dim 0 --classifier ncm --no-report
  "$RETAIN" run "${COMMON[@]}" "${S[@]}" --strategy ranpac --no-report
done
"$RETAIN" report "$OUT/retain.db" --out "$OUT"
