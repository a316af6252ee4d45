"""PublicTest accuracy of a trained run under the TTAs of the FER2013 papers.

Compares the whole face (and its mirror, ferlab's flip TTA) with the centre crop and the
ten-crop test of nets trained on crops (the centre and four corner windows of `--side` px, and
their mirrors), as in `benchmarks/RESULTS.md` ("Regularisers and 40-px crops"). It scores the
run's saved model (its best epoch) in bf16 where the CPU computes it natively.

    python benchmarks/compare_crop_tta.py runs/s13/crop40/seed0 --side 40
"""

from __future__ import annotations

import argparse

import torch

from ferlab.data import load_faces, make_split
from ferlab.inference import to_model_input
from ferlab.model_spec import load_model
from ferlab.precision import autocast, resolve_precision


def probabilities(model, x: torch.Tensor, precision) -> torch.Tensor:
    out = []
    with torch.no_grad(), autocast(precision):
        for batch in x.split(512):
            out.append(model(batch.contiguous(memory_format=torch.channels_last))
                       .float().softmax(1))
    return torch.cat(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run folder or model file")
    ap.add_argument("--side", type=int, default=40, help="side of the crops, px")
    ap.add_argument("--data", default="../shared/data/fer2013.csv.gz")
    args = ap.parse_args()
    _, val = make_split(load_faces(args.data), "usage")
    x, y = to_model_input(val.images), torch.as_tensor(val.labels)
    model = load_model(args.run).eval()
    precision = resolve_precision("auto", "cpu")
    e = 48 - args.side
    windows = [(e // 2, e // 2), (0, 0), (0, e), (e, 0), (e, e)]  # centre first
    whole, mirror = (probabilities(model, v, precision) for v in (x, x.flip(-1)))
    crops = [probabilities(model, v[..., a:a + args.side, b:b + args.side], precision)
             for v in (x, x.flip(-1)) for a, b in windows]

    def acc(p: torch.Tensor) -> str:
        return f"{(p.argmax(1) == y).float().mean().item():.2%}"

    print(f"{args.run}: PublicTest, {len(y)} faces, {precision.name}")
    print(f"  whole face            {acc(whole)}")
    print(f"  whole + mirror (flip) {acc(whole + mirror)}")
    print(f"  centre crop + mirror  {acc(crops[0] + crops[5])}")
    print(f"  ten-crop              {acc(sum(crops))}")
    print(f"  flip + ten-crop       {acc(whole + mirror + sum(crops) / 5)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
