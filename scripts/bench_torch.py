#!/usr/bin/python3
"""Time the plain-PyTorch reference TimeSformer (scripts/make_reference.py) in fp32 on the CPU: the peer
figure for `fibvid bench`. Random weights of a preset size; one clip (batch 1), no autograd.

With --attn fib, both attentions use Fibottention masks applied the way the reference code does (a dense
score matrix multiplied by the mask, or masked_fill for exclude), so PyTorch still does the dense work;
GFLOP/s is reported against the analytic count of the chosen attention (attended pairs only, the same
definition as fv_model_flops), and `gflop_dense` says what PyTorch actually computes.

Example: scripts/bench_torch.py --config base --frames 8 --size 224 --iters 5 --threads 2 --json
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference as mr  # noqa: E402

PRESETS = {
    # HF timesformer-base (facebook/timesformer-base-finetuned-k400) and the narrower ViT widths
    "base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072},
    "small": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6, "intermediate_size": 1536},
    "tiny": {"hidden_size": 192, "num_hidden_layers": 12, "num_attention_heads": 3, "intermediate_size": 768},
}


def main():
    ap = argparse.ArgumentParser(description="Time the PyTorch reference TimeSformer forward (fp32, CPU).")
    ap.add_argument("--config", choices=sorted(PRESETS), default="base")
    ap.add_argument("--frames", type=int, default=8, help="frames per clip T (default 8)")
    ap.add_argument("--size", type=int, default=224, help="square input size (default 224)")
    ap.add_argument("--iters", type=int, default=5, help="timed iterations (default 5)")
    ap.add_argument("--warmup", type=int, default=1, help="untimed iterations first (default 1)")
    ap.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    ap.add_argument("--attn", choices=["dense", "fib"], default="dense",
                    help="dense, or Fibottention on both spatial and temporal attention (default dense)")
    ap.add_argument("--semantics", choices=["zero", "exclude"], default="zero",
                    help="Fibottention mask semantics (default zero, as the reference code)")
    ap.add_argument("--labels", type=int, default=400, help="classifier outputs (default 400)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="fp32, or bf16 autocast (torch.autocast('cpu', torch.bfloat16): PyTorch's bf16 inference mode "
                         "on CPUs; fp32 weights, products in bf16) (default fp32)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = ap.parse_args()
    if args.iters < 1 or args.frames < 1 or args.size < 16 or args.size % 16:
        ap.error("need --iters >= 1, --frames >= 1 and --size a multiple of 16")

    torch.set_num_threads(args.threads)
    cfg = dict(mr.TINY_CONFIG)
    cfg.update(PRESETS[args.config])
    cfg.update({"image_size": 224, "num_frames": 8, "patch_size": 16})
    # smaller weights than the fixtures' so 12 layers stay in a sane range; values do not affect timing
    weights = mr.random_weights(cfg, args.labels, args.seed, scale=0.5)
    ref = mr.Ref(cfg, weights, dtype=torch.float32)
    del weights
    if args.attn == "fib":
        spatial, temporal = mr.fib(args.semantics), mr.fib(args.semantics)
    else:
        spatial, temporal = mr.DENSE, mr.DENSE

    g = torch.Generator().manual_seed(args.seed)
    frames = torch.randn(args.frames, 3, args.size, args.size, generator=g)
    times = []
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
        for i in range(args.warmup + args.iters):
            t0 = time.perf_counter()
            logits = ref.forward(frames, spatial, temporal)
            dt = (time.perf_counter() - t0) * 1e3
            if i >= args.warmup:
                times.append(dt)
    if not torch.isfinite(logits.float()).all():
        sys.exit("bench_torch: non-finite logits")

    gflop = mr.flops(cfg, args.labels, args.frames, args.size, args.size, spatial, temporal) / 1e9
    gflop_dense = mr.flops(cfg, args.labels, args.frames, args.size, args.size) / 1e9
    med = statistics.median(times)
    res = {
        "impl": "pytorch-reference", "torch": torch.__version__, "dtype": args.dtype, "config": args.config,
        "frames": args.frames, "size": args.size, "threads": args.threads, "attn": args.attn,
        "semantics": args.semantics if args.attn == "fib" else None, "iters": args.iters,
        "min_ms": round(min(times), 3), "median_ms": round(med, 3),
        "gflop": round(gflop, 4), "gflop_dense": round(gflop_dense, 4),
        "gflops_per_s": round(gflop / (med / 1e3), 3),
        "gflops_per_s_min": round(gflop / (min(times) / 1e3), 3),
    }
    if args.json:
        print(json.dumps(res))
    else:
        print("pytorch %s  %s %dx%dx%d  attn %s  threads %d" % (
            torch.__version__, args.config, args.frames, args.size, args.size,
            args.attn + ("/" + args.semantics if args.attn == "fib" else ""), args.threads))
        print("  min %.1f ms  median %.1f ms  (%d iters)  %.2f GFLOP  %.1f GFLOP/s" % (
            res["min_ms"], res["median_ms"], args.iters, gflop, res["gflops_per_s"]))
        if args.attn == "fib":
            print("  (PyTorch computes the masked attention densely: %.2f GFLOP)" % gflop_dense)


if __name__ == "__main__":
    main()
