#!/usr/bin/env python3
"""Renders synthetic KTP and NPWP cards in fonts the specimens do not use (Liberation Sans,
Serif and Narrow, DejaVu Serif and Sans Condensed, from Debian's fonts-liberation and
fonts-dejavu), with people, dates and numbers the specimens do not hold, and the same
ground-truth JSON beside each card. With scripts/wild-unseen.py on top, they check that the
wild rates hold on other fonts, not only on other photographs of the specimens' cards:

    pip install pillow numpy
    python3 scripts/render-cards.py --font liberation-serif --seed 3 --out /tmp/cards-serif \\
        ../shared/specimens/{clean,hard,phone}
    python3 scripts/wild-unseen.py --seed 3 --out /tmp/wild-serif /tmp/cards-serif
    filot ocr-report /tmp/cards-serif /tmp/wild-serif

Region codes (NIK prefix, province, regency, district), names and places are drawn from the
specimen folders' error-free cards, recombined; each NIK encodes its holder's own birth date
and sex, and each 15-digit NPWP carries a valid check digit, so a correct reading raises no
issue.
"""
import argparse
import datetime
import json
import pathlib
import random

from PIL import Image, ImageDraw, ImageFont

FONTS = "/usr/share/fonts/truetype"
FAMILIES = {
    # regular, bold, the numbers' monospace bold
    "liberation-sans": ("liberation/LiberationSans-Regular", "liberation/LiberationSans-Bold", "liberation/LiberationMono-Bold"),
    "liberation-serif": ("liberation/LiberationSerif-Regular", "liberation/LiberationSerif-Bold", "liberation/LiberationMono-Bold"),
    "liberation-narrow": ("liberation/LiberationSansNarrow-Regular", "liberation/LiberationSansNarrow-Bold", "liberation/LiberationMono-Bold"),
    "dejavu-serif": ("dejavu/DejaVuSerif", "dejavu/DejaVuSerif-Bold", "dejavu/DejaVuSansMono-Bold"),
    "dejavu-condensed": ("dejavu/DejaVuSansCondensed", "dejavu/DejaVuSansCondensed-Bold", "liberation/LiberationMono-Bold"),
}
W, H = 1011, 638


def font(path, size):
    return ImageFont.truetype(f"{FONTS}/{path}.ttf", size)


def luhn_digit(payload):
    total = 0
    for i, ch in enumerate(reversed(payload)):
        v = int(ch)
        if i % 2 == 0:
            v *= 2
            v = v - 9 if v > 9 else v
        total += v
    return (10 - total % 10) % 10


def pools(folders):
    ktp, values = [], {}
    for folder in folders:
        for f in sorted(pathlib.Path(folder).glob("ktp*.json")):
            d = json.loads(f.read_text())
            if d.get("expected_issues"):
                continue
            ktp.append(d)
            for k, v in d.items():
                if isinstance(v, str):
                    values.setdefault(k, set()).add(v)
    regions = sorted({(d["nik"][:6], d["province"], d["regency"], d["district"], d["birth_place"]) for d in ktp})
    return regions, {k: sorted(v) for k, v in values.items()}


def person(rng, regions, values):
    prefix, province, regency, district, place = rng.choice(regions)
    first = sorted({n.split()[0] for n in values["name"]})
    last = sorted({n.split()[-1] for n in values["name"] if " " in n})
    born = datetime.date(1950, 1, 1) + datetime.timedelta(days=rng.randint(0, 365 * 55))
    female = rng.random() < 0.5
    day = born.day + (40 if female else 0)
    nik = f"{prefix}{day:02d}{born.month:02d}{born.year % 100:02d}{rng.randint(1, 9999):04d}"
    return {
        "nik": nik,
        "name": f"{rng.choice(first)} {rng.choice(last)}",
        "birth_place": place,
        "birth_date": born.isoformat(),
        "gender": "PEREMPUAN" if female else "LAKI-LAKI",
        "blood_type": rng.choice(values["blood_type"]),
        "address": rng.choice(values["address"]),
        "rt_rw": f"{rng.randint(1, 20):03d}/{rng.randint(1, 15):03d}",
        "village": rng.choice(values["village"]),
        "district": district,
        "religion": rng.choice(values["religion"]),
        "marital_status": rng.choice(values["marital_status"]),
        "occupation": rng.choice(values["occupation"]),
        "nationality": "WNI",
        "valid_until": "SEUMUR HIDUP",
        "province": province,
        "regency": regency,
    }


def ktp(p, family, rng):
    regular, bold, mono = FAMILIES[family]
    img = Image.new("RGB", (W, H))
    top, bottom = (188, 224, 240), (214, 236, 244)
    d = ImageDraw.Draw(img)
    for y in range(H):
        t = y / H
        d.line([(0, y), (W, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    head = font(bold, 30)
    for y, text in [(20, f"PROVINSI {p['province']}"), (58, p["regency"])]:
        d.text(((760 - d.textlength(text, font=head)) / 2, y), text, font=head, fill=(20, 20, 20))
    d.text((30, 110), f"NIK   :{p['nik']}", font=font(mono, 36), fill=(20, 20, 20))
    label, value = font(regular, 23), font(regular, 23)
    dob = datetime.date.fromisoformat(p["birth_date"])
    rows = [
        ("Nama", p["name"]),
        ("Tempat/Tgl Lahir", f"{p['birth_place']}, {dob:%d-%m-%Y}"),
        ("Jenis Kelamin", p["gender"]),
        ("Alamat", p["address"]),
        ("   RT/RW", p["rt_rw"]),
        ("   Kel/Desa", p["village"]),
        ("   Kecamatan", p["district"]),
        ("Agama", p["religion"]),
        ("Status Perkawinan", p["marital_status"]),
        ("Pekerjaan", p["occupation"]),
        ("Kewarganegaraan", p["nationality"]),
        ("Berlaku Hingga", p["valid_until"]),
    ]
    for i, (k, v) in enumerate(rows):
        y = 170 + 36 * i
        d.text((30, y), k, font=label, fill=(25, 25, 25))
        d.text((248, y), ":", font=label, fill=(25, 25, 25))
        d.text((265, y), v, font=value, fill=(25, 25, 25))
        if k == "Jenis Kelamin":
            d.text((520, y), f"Gol. Darah : {p['blood_type']}", font=value, fill=(25, 25, 25))
    d.rectangle([770, 140, 975, 400], fill=(190, 190, 190), outline=(90, 90, 90))
    d.ellipse([820, 170, 925, 285], fill=(120, 110, 105))
    d.rectangle([800, 290, 945, 400], fill=(110, 100, 95))
    small = font(regular, 17)
    d.text((800, 422), p["regency"].replace("KOTA ", "").replace("KABUPATEN ", ""), font=small, fill=(25, 25, 25))
    issued = dob.replace(year=min(dob.year + 17 + rng.randint(0, 30), 2024))
    d.text((815, 447), f"{issued:%d-%m-%Y}", font=small, fill=(25, 25, 25))
    return img


def npwp(p, family, rng):
    regular, bold, mono = FAMILIES[family]
    img = Image.new("RGB", (W, H), (243, 243, 243))
    d = ImageDraw.Draw(img)
    d.rectangle([0, 0, W, 110], fill=(34, 60, 168))
    d.text((40, 18), "KEMENTERIAN KEUANGAN REPUBLIK INDONESIA", font=font(regular, 24), fill=(255, 255, 255))
    d.text((40, 58), "DIREKTORAT JENDERAL PAJAK", font=font(bold, 30), fill=(255, 255, 255))
    if rng.random() < 0.5:
        number, fmt = p["nik"], "16-digit"
        printed = number
    else:
        payload = f"{rng.randint(1, 99):02d}{rng.randint(0, 999999):06d}"
        nine = payload + str(luhn_digit(payload))
        number, fmt = f"{nine}{rng.randint(0, 999):03d}000", "15-digit"
        printed = f"{number[:2]}.{number[2:5]}.{number[5:8]}.{number[8]}-{number[9:12]}.{number[12:]}"
    d.text((40, 150), f"NPWP : {printed}", font=font(mono, 38), fill=(20, 20, 20))
    d.text((40, 215), p["name"], font=font(bold, 31), fill=(20, 20, 20))
    body = font(regular, 24)
    for i, line in enumerate([
        f"NIK : {p['nik']}",
        f"{p['address']} RT {p['rt_rw'][:3]} RW {p['rt_rw'][4:]}",
        f"{p['village']}, {p['district']}",
        p["regency"],
    ]):
        d.text((40, 272 + 42 * i), line, font=body, fill=(20, 20, 20))
    kpp = f"KPP PRATAMA {p['regency'].replace('KOTA ', '').replace('KABUPATEN ', '')}"
    d.text((40, 470), kpp, font=font(regular, 18), fill=(20, 20, 20))
    registered = f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/{rng.randint(2005, 2024)}"
    d.text((40, 505), f"Tanggal Terdaftar : {registered}", font=font(regular, 18), fill=(20, 20, 20))
    return img, {
        "npwp": number,
        "printed": printed,
        "name": p["name"],
        "nik": p["nik"],
        "kpp": kpp,
        "registered": registered,
        "format": fmt,
        "doc_type": "NPWP",
        "expected_issues": [],
        "expected_valid": True,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("folders", nargs="+", help="specimen folders to draw names and regions from")
    ap.add_argument("--font", choices=sorted(FAMILIES), required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--ktp", type=int, default=24)
    ap.add_argument("--npwp", type=int, default=12)
    args = ap.parse_args()
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    regions, values = pools(args.folders)
    rng = random.Random(f"{args.seed}/{args.font}")
    for i in range(args.ktp):
        p = person(rng, regions, values)
        ktp(p, args.font, rng).save(out / f"ktp_{i:03d}.png")
        truth = dict(p, expected_issues=[], expected_valid=True, file=f"ktp_{i:03d}.png", doc_type="KTP")
        (out / f"ktp_{i:03d}.json").write_text(json.dumps(truth, indent=2))
    for i in range(args.npwp):
        img, truth = npwp(person(rng, regions, values), args.font, rng)
        img.save(out / f"npwp_{i:03d}.png")
        truth["file"] = f"npwp_{i:03d}.png"
        (out / f"npwp_{i:03d}.json").write_text(json.dumps(truth, indent=2))


if __name__ == "__main__":
    main()
