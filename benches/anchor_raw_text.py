#!/usr/bin/env python3
"""The anchor issue 13 measures FiLot against, on any set of cards: how often the onnxruntime
pipeline the models come from (RapidOCR 1.4.4, PP-OCRv4 with its angle classifier) has a key
field's exact digits *somewhere in its raw text*, card by card against the ground-truth JSON
beside each image. FiLot must read the fields exactly at least that often, so this is run on
the same draw of cards as `filot ocr-report` (a draw of 72 wild cards varies by several points
from one seed to the next; the comparison on one draw does not).

    pip install rapidocr-onnxruntime==1.4.4   # in a virtual environment outside the clone
    python3 benches/anchor_raw_text.py /tmp/unseen11

A field is found when the digits of one raw line (everything else dropped) contain the
field's printed digits: the NIK, the NPWP, the birth date as DDMMYYYY.
"""

import argparse
import glob
import json
import os
import re


def printed_digits(truth):
    """The key fields' digits as the card prints them."""
    if truth["doc_type"] == "KTP":
        y, m, d = truth["birth_date"].split("-")
        return {"nik": truth["nik"], "birth_date": d + m + y}
    return {"npwp": re.sub(r"\D", "", truth["printed"])}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dirs", nargs="+", help="folders of cards with ground truth beside each")
    args = ap.parse_args()
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    found, total, skipped = {}, {}, 0
    for d in args.dirs:
        for truth_path in sorted(glob.glob(os.path.join(d, "*.json"))):
            truth = json.load(open(truth_path))
            stem = truth_path[: -len(".json")]
            image = next(
                (stem + e for e in (".jpg", ".png") if os.path.exists(stem + e)), None
            )
            if image is None or "doc_type" not in truth:
                skipped += 1  # a PDF card (RapidOCR reads images only) or no card's truth
                continue
            result, _ = engine(image, use_cls=True)
            lines = [re.sub(r"\D", "", text) for _, text, _ in (result or [])]
            for key, digits in printed_digits(truth).items():
                total[key] = total.get(key, 0) + 1
                found[key] = found.get(key, 0) + any(digits in line for line in lines)
    print(
        "anchor raw text: "
        + ", ".join(
            f"{k} {100.0 * found[k] / total[k]:.1f}% of {total[k]}" for k in sorted(total)
        )
    )


if __name__ == "__main__":
    main()
