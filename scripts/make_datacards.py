"""Write the data cards the app shows: cached_runs/datacards/{experiment}.json and {experiment}.png.

    python scripts/make_datacards.py [OUT_FOLDER]

Each card describes an experiment's built-in data (computed from the generators: split sizes, class counts or
foreground fractions, the majority-class / all-background baselines) and counts the parameters of its
variants; the PNG is a strip of training samples. Output is deterministic: regenerating gives the same bytes.
Uses torch; the app reads the files with the torch-free adlapp.datacards.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run as a plain script from anywhere

from adlapp.config import EXPERIMENT_INFO, EXPERIMENTS, base_config
from adlapp.data.describe import card_json, datacard, sample_strip
from adlapp.datacards import default_folder, load

MAX_PNG_BYTES = 60_000


def write_cards(out: Path) -> list[Path]:
    """Write both experiments' cards into `out`; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for experiment in EXPERIMENTS:
        text = card_json(datacard(experiment))
        png = sample_strip(base_config(experiment).data, EXPERIMENT_INFO[experiment].task)
        if len(png) > MAX_PNG_BYTES:
            raise SystemExit(f"{experiment}.png: {len(png):,} bytes, over the {MAX_PNG_BYTES:,} it may ship at")
        for path, data in ((out / f"{experiment}.json", text.encode("utf-8")), (out / f"{experiment}.png", png)):
            path.write_bytes(data)
            written.append(path)
        load(experiment, out, strict=True)                     # the reader accepts what was written
    return written


def main(argv: list[str]) -> None:
    out = Path(argv[0]) if argv else default_folder()
    for path in write_cards(out):
        print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
