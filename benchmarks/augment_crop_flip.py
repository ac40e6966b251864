"""random_crop_flip on a whole batch versus the same transform applied image by image (torchvision's pattern).

Run from the repository root: ``python benchmarks/augment_crop_flip.py [--batch 256] [--repeats 50] [--device cpu]``.
Prints medians (milliseconds per batch) and the ratio per-image / batched, both measured in this process.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from workbench.datasets import random_crop_flip
from workbench.devices import resolve_device

PADDING = 4


def per_image(images: torch.Tensor, generator: torch.Generator, fill: list[float]) -> torch.Tensor:
    """Peer: pad, crop and flip one image at a time, as a per-sample dataset transform would."""
    _, height, width = images.shape[1:]
    out = []
    for image in images:
        padded = torch.stack([F.pad(channel, (PADDING,) * 4, value=v) for channel, v in zip(image, fill, strict=True)])
        top, left = torch.randint(0, 2 * PADDING + 1, (2,), generator=generator).tolist()
        crop = padded[:, top : top + height, left : left + width]
        out.append(crop.flip(-1) if torch.rand(1, generator=generator).item() < 0.5 else crop)
    return torch.stack(out)


def interleaved_milliseconds(actions: dict, repeats: int, device: torch.device) -> dict[str, float]:
    """Median milliseconds per call of each action (finished on the device), alternating them so machine load hits
    both alike."""
    times: dict[str, list[float]] = {name: [] for name in actions}
    for action in actions.values():
        action()  # warm-up
    for _ in range(repeats):
        for name, action in actions.items():
            start = time.perf_counter()
            action()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    images = torch.randn(args.batch, 3, 32, 32, device=device)
    fill = [-2.0, -2.0, -2.0]
    generator = torch.Generator().manual_seed(0)
    medians = interleaved_milliseconds(
        {
            "batched": lambda: random_crop_flip(images, generator, padding=PADDING, fill=fill),
            "looped": lambda: per_image(images, generator, fill),
        },
        args.repeats,
        device,
    )
    batched, looped = medians["batched"], medians["looped"]
    print(f"batch={args.batch}x3x32x32 device={device} threads={args.threads} repeats={args.repeats} (medians)")
    print(f"per-image loop : {looped:.2f} ms")
    print(f"random_crop_flip: {batched:.2f} ms   per-image/batched = {looped / batched:.1f}x")


if __name__ == "__main__":
    main()
