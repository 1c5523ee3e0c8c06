"""The real all-MiniLM-L6-v2 (fetched by scripts/fetch-models.py) on the real text-cl tasks, end to end on a
small budget: full fine-tuning learns a task, LoRA through PEFT learns one, and SimpleCIL on its frozen
sentence features classifies two tasks' labels well above chance. Under CI the model and the data must be
there (a failure, not a skip)."""

from __future__ import annotations

import pytest

from retain.config.run import RunConfig
from retain.training.loop import run_experiment

pytestmark = pytest.mark.slow


def _run(text_cl_dir, minilm_dir, strategy, *, tasks=2, lr=1e-4, epochs=1, params=None, backbone_options=None,
         train=128):
    return run_experiment(RunConfig(
        benchmark="text-cl", backbone=f"hf:{minilm_dir}", data_dir=str(text_cl_dir), strategy=strategy, tasks=tasks,
        lr=lr, epochs=epochs, params=params or {}, backbone_options=backbone_options or {},
        benchmark_options={"stream": "agnews,dbpedia", "train_per_task": train, "test_per_task": 64,
                           "max_length": 64}))


def test_full_fine_tuning_learns_a_real_task_and_naive_forgets_it(text_cl_dir, minilm_dir):
    result = _run(text_cl_dir, minilm_dir, "naive", epochs=2)
    R = result.acc_matrix
    assert R[0][0] > 0.6  # AG News, 4 classes: chance 0.25
    assert R[1][1] > 0.4  # DBpedia, 14 classes after 16 steps: chance 1/14
    assert R[1][0] < R[0][0]  # class-IL naive fine-tuning forgets
    assert result.trainable_params > 22_000_000


def test_lora_learns_with_the_encoder_fixed(text_cl_dir, minilm_dir):
    result = _run(text_cl_dir, minilm_dir, "naive", tasks=1, lr=1e-3, epochs=2,
                  backbone_options={"mode": "lora", "head_lr_scale": 10.0})
    assert result.acc_matrix[0][0] > 0.5
    assert result.trainable_params < 200_000  # adapters and head only


def test_simplecil_on_frozen_sentence_features(text_cl_dir, minilm_dir):
    result = _run(text_cl_dir, minilm_dir, "ranpac", params={"projection_dim": 0, "classifier": "ncm"}, train=96)
    final = result.acc_matrix[-1]
    assert min(final) > 0.6, final  # both tasks, after both: class means do not forget
