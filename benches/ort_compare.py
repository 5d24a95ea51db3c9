#!/usr/bin/env python3
"""Times the same PP-OCRv4 models (models/*.onnx) in onnxruntime with the same thread count
and the same detector input sizes as `filot bench-ocr`, for a side-by-side comparison.

    pip install onnxruntime numpy pillow [rapidocr-onnxruntime==1.4.4]
    python3 benches/ort_compare.py --threads 2 CARD...

Raw models. Detection: each card resized as FiLot does (shorter side 736, longer side at most 1600, both
multiples of 32, BGR, ImageNet normalisation). Recognition: one 48x320 line per call (a
typical KTP field).

Whole pipeline (when `rapidocr-onnxruntime==1.4.4` is installed, the package the models come
from): RapidOCR with the same two model files, no angle classifier (FiLot has none), same
thread count, timed per card end to end (decode, detection with its post-processing, crops,
recognition in batches of 6) — the figure FiLot's `warm_card_ms` is compared with.
"""
import argparse
import json
import time

import numpy as np
import onnxruntime as ort
from PIL import Image


def det_input(path):
    img = Image.open(path).convert("RGB")
    w, h = img.size
    ratio = 736 / min(w, h)
    if max(w, h) * ratio > 1600:
        ratio = 1600 / max(w, h)
    tw, th = (max(1, round(w * ratio / 32)) * 32, max(1, round(h * ratio / 32)) * 32)
    x = np.asarray(img.resize((tw, th), Image.BILINEAR), dtype=np.float32)[:, :, ::-1] / 255.0
    x = (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    return x.transpose(2, 0, 1)[None].astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cards", nargs="+")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    det = ort.InferenceSession("models/ch_PP-OCRv4_det_infer.onnx", opts)
    rec = ort.InferenceSession("models/ch_PP-OCRv4_rec_infer.onnx", opts)
    inputs = [det_input(c) for c in args.cards]
    det.run(None, {det.get_inputs()[0].name: inputs[0]})
    t = time.perf_counter()
    for _ in range(args.rounds):
        for x in inputs:
            det.run(None, {det.get_inputs()[0].name: x})
    det_ms = (time.perf_counter() - t) * 1e3 / (args.rounds * len(inputs))
    line = np.random.default_rng(0).uniform(-1, 1, (1, 3, 48, 320)).astype(np.float32)
    rec.run(None, {rec.get_inputs()[0].name: line})
    t = time.perf_counter()
    n = 20 * args.rounds
    for _ in range(n):
        rec.run(None, {rec.get_inputs()[0].name: line})
    rec_ms = (time.perf_counter() - t) * 1e3 / n
    report = {"engine": f"onnxruntime {ort.__version__}", "threads": args.threads,
              "cards": len(inputs), "warm_det_ms": round(det_ms, 1),
              "rec_ms_per_line_48x320": round(rec_ms, 1)}
    report.update(pipeline(args))
    print(json.dumps(report))


def pipeline(args):
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError:
        return {}
    engine = RapidOCR(intra_op_num_threads=args.threads, inter_op_num_threads=1,
                      det_model_path="models/ch_PP-OCRv4_det_infer.onnx",
                      rec_model_path="models/ch_PP-OCRv4_rec_infer.onnx")
    engine(args.cards[0], use_cls=False)
    lines = 0
    t = time.perf_counter()
    for _ in range(args.rounds):
        for card in args.cards:
            result, _ = engine(card, use_cls=False)
            lines += len(result or [])
    passes = args.rounds * len(args.cards)
    return {"pipeline": "rapidocr-onnxruntime (no cls)",
            "pipeline_warm_card_ms": round((time.perf_counter() - t) * 1e3 / passes, 1),
            "pipeline_cards_per_s": round(passes / (time.perf_counter() - t), 3),
            "pipeline_lines_per_card": round(lines / passes, 1)}


if __name__ == "__main__":
    main()
