"""Peak memory of one ``log_likelihood`` call, measured in a fresh process (one per setting).

CPU: the process's high-water resident set size (``VmHWM`` in /proc/self/status, reset after
setup through /proc/self/clear_refs; ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` where /proc is
missing) read after setup (imports, model, random binary images) and again after the
evaluation; the difference is what the evaluation added. (tracemalloc cannot see torch's
allocations, and torch keeps no CPU allocator statistics.) CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

    python -m benchmarks.memory --num-samples 5000 --images 10 [--chunk-size S] [--device cuda]

prints one JSON line.
"""
from __future__ import annotations

import argparse
import json
import resource

import torch


def reset_peak_rss() -> bool:
    """Reset the kernel's high-water mark (Linux >= 4.0: write 5 to /proc/self/clear_refs); a
    child process otherwise inherits its parent's ``ru_maxrss`` across fork + exec."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """VmHWM from /proc/self/status (resettable), else ``ru_maxrss``."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-samples", type=int, required=True)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--chunk-size", type=int, default=None, help="default: pyro-air's automatic chunking")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from benchmarks.training import fresh_pair
    from pyro_air.evaluate import log_likelihood

    model, guide = fresh_pair(device=args.device)
    # Random binary images: memory does not depend on pixel values, and loading MNIST would set a
    # high-water mark (decompression) above what the evaluation itself needs.
    x = torch.bernoulli(torch.full((args.images, model.x_dim), 0.3), generator=torch.Generator().manual_seed(0))
    if args.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.max_memory_allocated() / 2 ** 20
    else:
        reset_peak_rss()
        before = peak_rss_mib()
    log_likelihood(model, guide, x, num_samples=args.num_samples, chunk_size=args.chunk_size)
    after = torch.cuda.max_memory_allocated() / 2 ** 20 if args.device.startswith("cuda") else peak_rss_mib()
    print(json.dumps({"num_samples": args.num_samples, "images": args.images, "chunk_size": args.chunk_size,
                      "device": args.device, "before_mib": before, "peak_mib": after, "added_mib": after - before}))


if __name__ == "__main__":
    main()
