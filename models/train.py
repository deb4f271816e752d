"""Train a shipped bundle: ``python -m models.train TASK --seed S``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    from models import BUNDLES_DIR
    from models.training import TASKS, train_task
    from models.training.loop import evaluate_bundle

    parser = argparse.ArgumentParser(prog="python -m models.train")
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="bundle directory")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--subjects", type=int, default=None)
    parser.add_argument("--eval-subjects", type=int, default=6)
    parser.add_argument(
        "--init", type=Path, default=None, help="bundle whose weights start training"
    )
    parser.add_argument("--lr", type=float, default=None, help="peak learning rate")
    parser.add_argument(
        "--evaluate-only",
        action="store_true",
        help="measure the bundle at --out (default: the shipped one) again and "
        "rewrite its metrics and card; the weights stay as they are",
    )
    parser.add_argument(
        "--change", default=None, help="with --evaluate-only: a changelog line"
    )
    parser.add_argument(
        "--eval-seed",
        type=int,
        default=None,
        help="with --evaluate-only: seed of the held-out phantoms "
        "(default: the training seed + 1000)",
    )
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    task = TASKS[args.task]()
    out = args.out or BUNDLES_DIR / args.task
    if args.evaluate_only:
        if args.eval_subjects < 1:
            parser.error("--eval-subjects must be at least 1 with --evaluate-only")
        if not (out / "configs" / "metadata.json").is_file():
            parser.error(f"no bundle at {out} (configs/metadata.json is missing)")
        try:
            metrics = evaluate_bundle(
                task, out, args.eval_subjects, seed=args.eval_seed, change=args.change
            )
        except (ValueError, OSError) as exc:
            parser.error(str(exc))
        for name, value in metrics.items():
            print(f"{name}: {value:.4f}")
        return 0
    train_task(
        task,
        args.seed,
        out,
        steps=args.steps,
        subjects=args.subjects,
        evaluate_subjects=args.eval_subjects,
        progress=print,
        init_from=args.init,
        learning_rate=args.lr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
