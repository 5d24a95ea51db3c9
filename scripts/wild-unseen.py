#!/usr/bin/env python3
"""Makes wild-style phone photos of cards FiLot's wild set does not hold, to check that the
wild rates are not tuned to those 36 files: each card of the given specimen folders (clean,
hard, phone) is photographed anew with a seed of its own, turned by a quarter or half turn
and a small tilt, seen in perspective, small in a frame of textured table, dimmed, shaken
(motion blur), shrunk to 960-1280 px and recompressed. The ground truth is copied beside
each photo, so that `filot ocr-report OUT` reports on them like on any specimen set.

    pip install pillow numpy
    python3 scripts/wild-unseen.py --seed 7 --out /tmp/unseen ../shared/specimens/{clean,hard,phone}
    filot ocr-report /tmp/unseen
"""
import argparse
import json
import math
import pathlib
import random

import numpy as np
from PIL import Image, ImageFilter


def perspective_coeffs(src, dst):
    """Coefficients for PIL's PERSPECTIVE transform mapping output points dst to input src."""
    rows = []
    for (x, y), (u, v) in zip(dst, src):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    a = np.array(rows, dtype=np.float64)
    b = np.array([c for p in src for c in p], dtype=np.float64)
    return np.linalg.solve(a, b).tolist()


def motion_blur(img, length, angle):
    if length < 1.5:
        return img
    n = int(math.ceil(length)) | 1
    k = np.zeros((n, n))
    c = n // 2
    for t in np.linspace(-length / 2, length / 2, 4 * n):
        x = int(round(c + t * math.cos(angle)))
        y = int(round(c + t * math.sin(angle)))
        k[y, x] = 1
    k /= k.sum()
    arr = np.asarray(img, dtype=np.float32)
    out = np.zeros_like(arr)
    pad = np.pad(arr, ((c, c), (c, c), (0, 0)), mode="edge")
    for dy in range(n):
        for dx in range(n):
            if k[dy, dx]:
                out += k[dy, dx] * pad[dy : dy + arr.shape[0], dx : dx + arr.shape[1]]
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def table(rng, w, h):
    base = np.array([rng.randint(60, 150), rng.randint(50, 130), rng.randint(40, 120)], np.float32)
    noise = np.random.default_rng(rng.randint(0, 2**31)).normal(0, 6, (h // 8 + 1, w // 8 + 1, 1))
    grain = np.kron(noise, np.ones((8, 8, 1)))[:h, :w]
    light = np.linspace(0.8, 1.1, w)[None, :, None] * np.linspace(0.9, 1.05, h)[:, None, None]
    return Image.fromarray((base * light + grain).clip(0, 255).astype(np.uint8))


def photograph(card, rng):
    card = card.convert("RGB")
    long_side = rng.choice([960, 1024, 1280])
    portrait = rng.random() < 0.5
    fw, fh = (long_side * 3 // 4, long_side) if portrait else (long_side, long_side * 3 // 4)
    frame = table(rng, fw, fh)
    # The card's size in the frame: a third to two thirds of the frame's width.
    cw = int(fw * rng.uniform(0.45, 0.8))
    ch = int(cw * card.height / card.width)
    if ch > fh * 0.8:
        ch = int(fh * 0.8)
        cw = int(ch * card.width / card.height)
    tilt = math.radians(rng.uniform(-12, 12))
    cx, cy = fw * rng.uniform(0.4, 0.6), fh * rng.uniform(0.4, 0.6)
    corners = []
    for x, y in [(-cw / 2, -ch / 2), (cw / 2, -ch / 2), (cw / 2, ch / 2), (-cw / 2, ch / 2)]:
        j = 0.04 * cw
        x, y = x + rng.uniform(-j, j), y + rng.uniform(-j, j)
        corners.append((cx + x * math.cos(tilt) - y * math.sin(tilt), cy + x * math.sin(tilt) + y * math.cos(tilt)))
    src = [(0, 0), (card.width, 0), (card.width, card.height), (0, card.height)]
    coeffs = perspective_coeffs(src, corners)
    warped = card.transform((fw, fh), Image.PERSPECTIVE, coeffs, Image.BICUBIC)
    mask = Image.new("L", card.size, 255).transform((fw, fh), Image.PERSPECTIVE, coeffs, Image.BICUBIC)
    frame.paste(warped, (0, 0), mask)
    frame = frame.rotate(rng.choice([0, 90, 180, 270]), expand=True)
    light = rng.uniform(0.45, 1.0)
    frame = Image.fromarray((np.asarray(frame, np.float32) * light).clip(0, 255).astype(np.uint8))
    frame = motion_blur(frame, rng.uniform(0, 4), rng.uniform(0, math.pi))
    frame = frame.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.0)))
    return frame


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for folder in args.folders:
        for truth in sorted(pathlib.Path(folder).glob("*.json")):
            image = next((truth.with_suffix(s) for s in (".jpg", ".png") if truth.with_suffix(s).exists()), None)
            if image is None:
                continue
            name = f"{pathlib.Path(folder).name}_{truth.stem}"
            rng = random.Random(f"{args.seed}/{name}")
            photo = photograph(Image.open(image), rng)
            photo.save(out / f"{name}.jpg", quality=rng.randint(60, 85))
            data = json.loads(truth.read_text())
            data["file"] = f"{name}.jpg"
            (out / f"{name}.json").write_text(json.dumps(data, indent=2))
            print(name)


if __name__ == "__main__":
    main()
