"""Sequential LoRA on text tasks as a person would write it with transformers + PEFT and nothing of retain:
the baseline of benchmarks/text_speed.py. It does the steps `retain run --benchmark text-cl --backbone
hf:DIR --backbone-option mode=lora --strategy naive` does, on the same batches: the same examples of
each task (the fixed draw of text-cl's train_per_task / test_per_task), the same batch order (a seeded
shuffle, then buckets of 20 batches sorted by length), dynamic padding, LoRA r 8 / alpha 16 on query and
value, mean pooling, a linear head over every class of the stream at 10x the rate whose rows train from
the task that brings their class, Adam; after each
task (and once before the first, as retain's accuracy matrix has a row for forward transfer) it
evaluates every task's test set under inference_mode, 256 texts at a time, sorted by length.

    python benchmarks/plain_text_lora.py --model models/minilm-l6-v2 --data ../shared/data/text-cl \
        --tasks agnews,dbpedia --train 256 --test 128 --max-length 128 --lr 1e-3

Prints one JSON line: the accuracy matrix, steps, tokens trained on, seconds and peak memory.
"""

import argparse
import json
import resource
import time

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import torch  # noqa: E402
from peft import LoraConfig, inject_adapter_in_model  # noqa: E402
from transformers import AutoModel, AutoTokenizer  # noqa: E402


def read(path, names):
    rows = [json.loads(line) for line in open(path) if line.strip()]
    return [r["text"] for r in rows], np.array([names.index(str(r["label"])) for r in rows])


def keep(n, k, seed):
    return np.arange(n) if k is None or k >= n else np.sort(np.random.default_rng(seed).permutation(n)[:k])


def batches(n, lengths, size, gen):
    perm = torch.randperm(n, generator=gen)
    chunk, pieces = size * 20, []
    for i in range(0, n, chunk):
        part = perm[i: i + chunk]
        pieces.append(part[torch.argsort(lengths[part], stable=True)])
    cut = list(torch.split(torch.cat(pieces), size))
    last = cut.pop() if len(cut[-1]) < size else None
    order = [cut[j] for j in torch.randperm(len(cut), generator=gen).tolist()]
    return order + ([last] if last is not None else [])


def pad(rows, pad_id):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--tasks", default="agnews,dbpedia")
    ap.add_argument("--train", type=int, default=256)
    ap.add_argument("--test", type=int, default=128)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--head-scale", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    tasks, offset = [], 0
    for t, name in enumerate(a.tasks.split(",")):
        names = json.load(open(f"{a.data}/{name}/labels.json"))
        split = {}
        for s, k, salt in (("train", a.train, 0), ("test", a.test, 1)):
            texts, labels = read(f"{a.data}/{name}/{s}.jsonl", names)
            idx = keep(len(texts), k, 1000 * t + salt)
            rows = tok([texts[i] for i in idx], truncation=True, max_length=a.max_length)["input_ids"]
            y = torch.from_numpy(labels[idx] + offset)
            if s == "test":
                order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
                rows, y = [rows[i] for i in order], y[order]
            split[s] = (rows, y)
        tasks.append(split)
        offset += len(names)
    encoder = AutoModel.from_pretrained(a.model, add_pooling_layer=False)
    inject_adapter_in_model(LoraConfig(r=8, lora_alpha=16, target_modules=["query", "value"], lora_dropout=0.0),
                            encoder)
    for n, p in encoder.named_parameters():
        p.requires_grad_("lora_" in n)
    head = torch.nn.Linear(encoder.config.hidden_size, offset)
    opt = torch.optim.Adam([{"params": [p for p in encoder.parameters() if p.requires_grad], "lr": a.lr},
                            {"params": head.parameters(), "lr": a.lr * a.head_scale}])

    def forward(ids, mask):
        h = encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).float()
        return head((h * m).sum(1) / m.sum(1).clamp_min(1.0))

    def evaluate():
        encoder.eval()
        out = []
        with torch.inference_mode():
            for task in tasks:
                rows, y = task["test"]
                correct = 0
                for i in range(0, len(rows), 256):
                    logits = forward(*pad(rows[i: i + 256], tok.pad_token_id))
                    correct += int((logits.argmax(1) == y[i: i + 256]).sum())
                out.append(correct / len(rows))
        encoder.train()
        return out

    matrix, steps, tokens = [evaluate()], 0, 0
    gen = torch.Generator().manual_seed(a.seed)
    t_train = 0.0
    grown = torch.zeros(offset, dtype=torch.bool)
    for task in tasks:
        rows, y = task["train"]
        grown[y.unique()] = True
        lengths = torch.tensor([len(r) for r in rows])
        t1 = time.perf_counter()
        for _ in range(a.epochs):
            for b in batches(len(rows), lengths, a.batch, gen):
                ids, mask = pad([rows[i] for i in b.tolist()], tok.pad_token_id)
                loss = torch.nn.functional.cross_entropy(forward(ids, mask), y[b])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                head.weight.grad[~grown] = 0  # the head grows with the classes, as retain's does
                head.bias.grad[~grown] = 0
                opt.step()
                steps, tokens = steps + 1, tokens + int(mask.sum())
        t_train += time.perf_counter() - t1
        matrix.append(evaluate())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"acc_matrix": matrix, "steps": steps, "train_tokens": tokens, "train_seconds": t_train,
                      "wall_seconds": time.perf_counter() - T0, "peak_mem_mb": peak}))


if __name__ == "__main__":
    main()
