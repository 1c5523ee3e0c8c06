"""`retain pretrain`: train a small transformers ViT on data kept apart from the continual stream and
save it where ``--backbone hf:DIR`` loads it (:mod:`retain.training.pretrain`)."""

from __future__ import annotations

import argparse
import os


def add_parser(sub) -> None:
    from retain.cli.run import _option

    p = sub.add_parser("pretrain", help="pretrain a ViT on held-apart data and save it for --backbone hf:DIR")
    p.add_argument("--out", required=True, help="new (or empty) directory to save the model in")
    p.add_argument("--benchmark", default="split-mnist", help="data to pretrain on: every task of this benchmark, "
                                                             "jointly (default split-mnist)")
    p.add_argument("--benchmark-option", action="append", type=_option, metavar="KEY=VALUE",
                   help="a benchmark option, repeatable (e.g. classes=0-3: the digits the stream will not use)")
    p.add_argument("--data-dir", default=os.environ.get("RETAIN_DATA"),
                   help="folder with the data files (default: $RETAIN_DATA)")
    p.add_argument("--patch", type=int, help="patch size (must divide the image size; default 7 for 28 x 28 "
                                            "images, 16 for 32 x 32)")
    p.add_argument("--dim", type=int, default=64, help="width (default 64)")
    p.add_argument("--depth", type=int, default=4, help="transformer layers (default 4)")
    p.add_argument("--heads", type=int, default=4, help="attention heads (default 4)")
    p.add_argument("--mlp-ratio", type=float, default=2.0, help="MLP width / dim (default 2)")
    p.add_argument("--epochs", type=int, default=5, help="passes over the data (default 5)")
    p.add_argument("--batch-size", type=int, default=128, help="batch size (default 128)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation and batch order (default 0)")
    p.set_defaults(handler=cmd_pretrain)


def cmd_pretrain(args: argparse.Namespace) -> int:
    from retain.training.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(out=args.out, benchmark=args.benchmark, benchmark_options=dict(args.benchmark_option or []),
                         data_dir=args.data_dir, patch=args.patch, dim=args.dim, depth=args.depth, heads=args.heads,
                         mlp_ratio=args.mlp_ratio, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed)
    record = pretrain(cfg)
    print(f"test accuracy on classes {record['classes']}: {100 * record['test_accuracy']:.2f}%  "
          f"({record['seconds']} s)")
    print(f"saved: {args.out}  (use it: retain run --backbone hf:{args.out} ...)")
    return 0
