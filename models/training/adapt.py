"""Site adaptation: fine-tune the reader on a site's own labelled clips, test it on held clips of that
site, and pack it as a signed update bundle only if it reads at least as many of them as the reader the
units run now. The clips never leave the machine this runs on.

    python -m models.training.adapt CLIPS... --key release.pem --out DIR [--version V] [--config UNIT.toml]
        [--steps 600] [--batch 32] [--lr 3e-4] [--site-share 0.5] [--variants 12] [--synth 4000]
        [--min-gain 0] [--held-every 4] [--min-held 10] [--json]

CLIPS are clip folders or folders of them (`alpr-unit record-clip`, labelled with `alpr-unit clip
label`; docs/hil.md). A clip is held out of training when the SHA-256 of its folder name is 0 modulo
`--held-every` (`models.training.siteclips`). Steps:

1. the plates of the training clips found in their frames by the units' recogniser (`siteclips.harvest`);
2. the units' reader (`--models DIR`/reader.tflite, dequantised: `train_reader.float_reader`) fine-tuned
   for `--steps` batches, `--site-share` of each batch the site's plates (re-framed and damaged, `--variants`
   per plate found), the rest the shipped training data: synthetic plates (`train_reader.synth_set`, the
   plates of `models.training.synth` in the training scenes) and the pseudo-labelled real crops where
   `cache/pseudo` has them (`train_reader.pseudo_set`), so that the layouts the site does not see are
   not forgotten;
3. exported to int8 (`train_reader.export_reader`, calibrated on the same mix);
4. before and after: every held clip through the unit's own pipeline with the site's thresholds
   (`--config`, else the defaults), scored per vehicle as the HIL report scores (exact, misread,
   missed, duplicates, false reads);
5. shipped only if the new reader reads exactly at least `--min-gain` more held vehicles than the
   current one (0: no fewer) and makes no more false reads; then DIR/alpr-gate-VERSION.bundle, signed
   by `--key` (the release key the units pinned: `firmware/build-bundle`), carrying this checkout's
   `unit`, `wire`, `models` and `provisioning` packages with the new reader, for `alpr-unit update apply`.

Writes DIR/report.json (figures only: no plate is written anywhere but the clips themselves),
DIR/candidate/reader.tflite + reader.json (kept when refused, for a look), and the bundle. Needs the
`train` extra (TensorFlow) and `../shared/data/train` + `../shared/data/synth` (the synthetic plates'
scenes and template), so it runs on a technician's or release engineer's machine, not on a unit.
Exit: 0 shipped, 1 refused (the new reader reads fewer held vehicles), 2 bad usage.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from models.training import siteclips
from models.training.siteclips import stderr

ROOT = Path(__file__).resolve().parents[2]
READER_FILES = ("reader.tflite", "reader.json")
DETECTOR_FILES = ("detector.tflite", "detector.json")


@dataclasses.dataclass
class Verdict:
    ship: bool
    reason: str


def decide(before: dict[str, Any], after: dict[str, Any], min_gain: int = 0) -> Verdict:
    """Ship only a reader that reads exactly at least `min_gain` more held vehicles than the current one
    and stores no more false reads."""
    gain = after["exact"] - before["exact"]
    if gain < min_gain:
        fewer = "fewer" if gain < 0 else "not enough more"
        return Verdict(False, f"refused: the adapted reader reads {after['exact']}/{after['vehicles']} held vehicles "
                              f"exactly, the current one {before['exact']}/{before['vehicles']} ({fewer}: "
                              f"{gain:+d}, at least {min_gain:+d} wanted)")
    if after["false_reads"] > before["false_reads"]:
        return Verdict(False, f"refused: the adapted reader makes {after['false_reads']} false reads on the held clips, "
                              f"the current one {before['false_reads']}")
    return Verdict(True, f"ship: {after['exact']}/{after['vehicles']} held vehicles read exactly, "
                         f"the current reader {before['exact']}/{before['vehicles']} ({gain:+d})")


def default_version(src: Path, now: float | None = None) -> str:
    """The checkout's version with the UTC minute as a fourth number (0.1.0 -> 0.1.0.202612061530):
    newer than the release the units run, older than the next release."""
    from unit import update
    base = update.setup_cfg_version(src)
    if not base:
        raise ValueError(f"no [metadata] version in {src / 'setup.cfg'}: give --version")
    parts = base.split(".")
    if len(parts) > 3:
        raise ValueError(f"version {base} already has four numbers: give --version")
    parts += ["0"] * (3 - len(parts))
    return ".".join(parts + [time.strftime("%Y%m%d%H%M", time.gmtime(now))])


def pack_bundle(src: Path, models: Path, candidate: Path, key_path: Path, out: Path, version: str) -> dict[str, Any]:
    """A signed bundle (`unit.update.build_bundle`, what firmware/build-bundle makes) of `src`'s
    packages with `models`' detector and the candidate reader in `models/`."""
    from unit import update
    from unit.keys import load_ed25519_private
    key = load_ed25519_private(key_path)
    with tempfile.TemporaryDirectory(prefix="alpr-adapt-bundle-") as tmp:
        stage = Path(tmp)
        for pkg in update.PACKAGES:
            shutil.copytree(src / pkg, stage / pkg, ignore=shutil.ignore_patterns(*update.EXCLUDE_DIRS, "*.pyc"))
        if (src / "setup.cfg").exists():
            shutil.copy(src / "setup.cfg", stage / "setup.cfg")      # the release's requirements
        for name in DETECTOR_FILES:
            if (models / name).exists():
                shutil.copy(models / name, stage / "models" / name)
        for name in READER_FILES:
            shutil.copy(candidate / name, stage / "models" / name)
        return update.build_bundle(stage, key, out, version=version)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def base_data(seed: int, synth: int, pseudo_variants: int, workers: int) -> tuple[np.ndarray, list[str], dict[str, int]]:
    """The shipped training data the site's plates are mixed with (see the module text)."""
    from models.training.train_reader import pseudo_set, synth_set
    xs, ys = synth_set(seed, synth, "train", workers) if synth else (np.zeros((0, 40, 128), np.uint8), [])
    xp, yp = pseudo_set("train", pseudo_variants, seed)
    counts = {"synthetic": len(xs), "pseudo_labelled_real": len(xp)}
    if len(xp):
        xs, ys = np.concatenate([xs, xp]), list(ys) + list(yp)
    return xs, list(ys), counts


def fine_tune(init: Path, x_site: np.ndarray, y_site: list[str], x_base: np.ndarray, y_base: list[str],
              steps: int, batch: int, lr: float, site_share: float, seed: int):
    """The reader in `init` (int8, dequantised) trained for `steps` batches, `site_share` of each from
    the site's inputs and the rest from the base data, Adam on a cosine schedule (CTC loss)."""
    import keras

    from models.training.train_reader import float_reader, labels_array
    keras.utils.set_random_seed(seed)
    model, width = float_reader(init)
    sched = keras.optimizers.schedules.CosineDecay(lr, max(1, steps), alpha=0.05)
    model.compile(optimizer=keras.optimizers.Adam(sched), loss=keras.losses.CTC())
    rng = np.random.default_rng(seed)
    n_site = batch if not len(x_base) else int(round(site_share * batch))
    y_site_a, y_base_a = labels_array(y_site), labels_array(y_base) if len(y_base) else None
    t0, losses = time.time(), []
    for step in range(1, steps + 1):
        i = rng.integers(0, len(x_site), n_site)
        x, y = x_site[i], y_site_a[i]
        if batch - n_site and y_base_a is not None:
            j = rng.integers(0, len(x_base), batch - n_site)
            x, y = np.concatenate([x, x_base[j]]), np.concatenate([y, y_base_a[j]])
        loss = model.train_on_batch(x[..., None].astype(np.float32) / 255.0, y)
        losses.append(float(loss if np.ndim(loss) == 0 else loss[0]))
        if step % 25 == 0 or step == steps:
            stderr(f"  step {step}/{steps}: loss {np.mean(losses[-25:]):.3f} ({time.time() - t0:.0f}s)")
    return model, width, round(time.time() - t0, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m models.training.adapt", description=__doc__.split("\n\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="+", help="labelled clip folders, or folders holding them")
    ap.add_argument("--key", type=Path, required=True, help="the release private key (PEM) the units trust")
    ap.add_argument("--out", type=Path, required=True, help="folder for the report, the candidate and the bundle")
    ap.add_argument("--version", help="bundle version (default: setup.cfg's + the UTC minute as a fourth number)")
    ap.add_argument("--models", type=Path, default=ROOT / "models",
                    help="the detector and reader the units run now (default: this checkout's models/)")
    ap.add_argument("--config", type=Path, help="the site's unit config (TOML): its [recognition], [camera] and "
                                                "[dedup] tables are used for the held test (default: the unit's defaults)")
    ap.add_argument("--steps", type=int, default=600, help="training batches (default 600)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (cosine decay)")
    ap.add_argument("--site-share", type=float, default=0.5, help="share of each batch from the site's clips")
    ap.add_argument("--variants", type=int, default=12, help="training inputs made from each plate found in a frame")
    ap.add_argument("--synth", type=int, default=4000, help="synthetic plates in the mix (0: none)")
    ap.add_argument("--pseudo-variants", type=int, default=4,
                    help="damaged copies of each pseudo-labelled real crop, where cache/pseudo has them")
    ap.add_argument("--frames", type=int, default=8, help="frames read per labelled vehicle")
    ap.add_argument("--min-gain", type=int, default=0,
                    help="held vehicles the new reader must read exactly beyond the current one (default 0: no fewer)")
    ap.add_argument("--held-every", type=int, default=siteclips.HELD_EVERY,
                    help="a clip is held when sha256(name) %% N == 0 (default 4: a quarter)")
    ap.add_argument("--min-held", type=int, default=10, help="held vehicles needed for the comparison to mean anything")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1), help="processes rendering synthetic plates")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    args = ap.parse_args(argv)
    if not 0.0 <= args.site_share <= 1.0:
        ap.error(f"--site-share is a share between 0 and 1, not {args.site_share}")
    for name in ("steps", "batch", "variants", "frames", "held_every"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return run(args)
    except _Usage as exc:
        print(f"adapt: {exc}", file=sys.stderr)
        return 2


class _Usage(Exception):
    """Cannot run as asked: exit 2."""


def _check_inputs(args: argparse.Namespace) -> tuple[siteclips.SiteClips, dict[str, Any] | None, str]:
    from unit.clips import ClipError
    from unit.keys import load_ed25519_private
    try:
        load_ed25519_private(args.key)
    except (OSError, ValueError) as exc:
        raise _Usage(f"--key {args.key}: not a release private key ({exc})") from None
    for name in READER_FILES[:1] + DETECTOR_FILES[:1]:
        if not (args.models / name).is_file():
            raise _Usage(f"--models {args.models}: no {name}")
    try:
        version = args.version or default_version(ROOT)
        from unit.update import parse_version
        parse_version(version)
    except ValueError as exc:
        raise _Usage(f"--version: {exc}") from None
    base = None
    if args.config:
        try:
            with open(args.config, "rb") as f:
                base = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise _Usage(f"--config {args.config}: {exc}") from None
        base = {k: base[k] for k in ("recognition", "camera", "dedup", "motion") if k in base}
        base.get("recognition", {}).pop("model_dir", None)     # before and after name their own models
        base["_base"] = str(args.config.resolve().parent)
    try:
        site = siteclips.split_clips(args.clips, args.held_every)
    except ClipError as exc:
        raise _Usage(str(exc)) from None
    if not (site.train or site.held or site.skipped):
        raise _Usage(f"no clip folders (with clip.json) in {', '.join(map(str, args.clips))}")
    if not site.train:
        raise _Usage("no labelled training clips (every labelled clip fell in the held part, or none is labelled)")
    if site.vehicles("held") < args.min_held:
        raise _Usage(f"{site.vehicles('held')} held vehicles in {len(site.held)} clips, at least {args.min_held} "
                     "needed (--min-held): record and label more clips")
    return site, base, version


def run(args: argparse.Namespace) -> int:
    t_start = time.time()
    site, base, version = _check_inputs(args)
    try:
        import keras  # noqa: F401  (the train extra; fail before any work)
    except ImportError:
        raise _Usage("needs the train extra (TensorFlow, Keras): pip install -e '.[unit,train]'") from None
    from unit.recognise import from_config
    out: Path = args.out
    cand = out / "candidate"
    cand.mkdir(parents=True, exist_ok=True)
    rec_cfg = _recognition(site, base)
    current = from_config(dataclasses.replace(rec_cfg, model_dir=str(args.models)))
    stderr(f"site clips: {len(site.train)} to train on ({site.vehicles('train')} vehicles), {len(site.held)} held "
           f"({site.vehicles('held')} vehicles)" + (f", {len(site.skipped)} skipped" if site.skipped else ""))
    found = siteclips.harvest(site.train, current, args.frames, progress=stderr)
    if not found.found:
        raise _Usage("the current recogniser found none of the labelled plates in the training clips' frames")
    x_site, y_site = siteclips.training_inputs(found.found, args.variants, args.seed)
    t = time.time()
    x_base, y_base, counts = base_data(args.seed, args.synth, args.pseudo_variants, args.workers)
    stderr(f"training data: {len(x_site)} site inputs from {len(found.found)} plate crops of "
           f"{found.vehicles_found}/{found.vehicles} vehicles; shipped data {counts} ({time.time() - t:.0f}s)")
    model, width, train_s = fine_tune(args.models / "reader.tflite", x_site, y_site, x_base, y_base,
                                      args.steps, args.batch, args.lr, args.site_share, args.seed)
    from models.training.train_reader import export_reader, machine
    rep = np.concatenate([x_site, x_base]) if len(x_base) else x_site
    with _stdout_to_stderr():       # the converter talks on stdout, which --json keeps for the report
        export_reader(model, rep, cand / "reader.tflite")
    init_sha = _sha256(args.models / "reader.tflite")
    adapted = from_config(dataclasses.replace(rec_cfg, model_dir=str(_candidate_dir(args.models, cand))))
    stderr("held test: the current reader")
    before = siteclips.held_test(site.held, current, base, stderr)
    stderr("held test: the adapted reader")
    after = siteclips.held_test(site.held, adapted, base, stderr)
    verdict = decide(before, after, args.min_gain)
    report = {
        "verdict": "shipped" if verdict.ship else "refused", "reason": verdict.reason,
        "held_rule": f"int(sha256(clip folder name), 16) % {args.held_every} == 0",
        "clips": {"train": len(site.train), "held": len(site.held), "skipped": len(site.skipped)},
        "vehicles": {"train": site.vehicles("train"), "held": site.vehicles("held")},
        "harvest": found.summary(),
        "training": {"steps": args.steps, "batch": args.batch, "lr": args.lr, "site_share": args.site_share,
                     "variants": args.variants, "site_inputs": len(x_site), "shipped_data": counts,
                     "seed": args.seed, "train_seconds": train_s, "machine": machine()},
        "before": {k: v for k, v in before.items() if k != "clips"},
        "after": {k: v for k, v in after.items() if k != "clips"},
        "min_gain": args.min_gain,
        "models": {"detector_sha256": _sha256(args.models / "detector.tflite"), "reader_before_sha256": init_sha,
                   "reader_after_sha256": _sha256(cand / "reader.tflite")},
    }
    card = {"model": "reader", "file": "reader.tflite", "bytes": (cand / "reader.tflite").stat().st_size,
            "width": width, "input": [40, 128, 1], "site_adaptation": {
                k: report[k] for k in ("held_rule", "clips", "vehicles", "harvest", "training", "before", "after")},
            "init": "reader.tflite", "init_sha256": init_sha}
    (cand / "reader.json").write_text(json.dumps(card, indent=2) + "\n")
    if verdict.ship:
        bundle = out / f"alpr-gate-{version}.bundle"
        manifest = pack_bundle(ROOT, args.models, cand, args.key, bundle, version)
        report["bundle"] = {"path": str(bundle), "version": version, "files": len(manifest["files"]),
                            "bytes": bundle.stat().st_size}
    report["seconds"] = round(time.time() - t_start, 1)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(_table(report))
    return 0 if verdict.ship else 1


@contextlib.contextmanager
def _stdout_to_stderr():
    """File descriptor 1 pointed at 2 for a while (TensorFlow's C++ side writes there too)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):      # and Python's prints, wherever sys.stdout points
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _recognition(site: siteclips.SiteClips, base: dict[str, Any] | None):
    """The site's [recognition] as the unit parses it (checked: a bad key is an error naming it)."""
    from unit.config import ConfigError
    try:
        with tempfile.TemporaryDirectory(prefix="alpr-adapt-") as tmp:
            return siteclips.unit_config(site.held[0], Path(tmp), base, siteclips.throwaway_sealing_key()).recognition
    except (ConfigError, ValueError) as exc:
        raise _Usage(f"--config: {exc}") from None


def _candidate_dir(models: Path, cand: Path) -> Path:
    """The folder the unit would load after the update: the current detector, the adapted reader."""
    for name in DETECTOR_FILES:
        if (models / name).exists() and not (cand / name).exists():
            shutil.copy(models / name, cand / name)
    return cand


def _table(r: dict[str, Any]) -> str:
    lines = [f"held clips: {r['clips']['held']} ({r['vehicles']['held']} vehicles; {r['held_rule']})",
             f"{'':<10} {'exact':>6} {'misread':>8} {'missed':>7} {'dupl.':>6} {'false':>6}"]
    for name in ("before", "after"):
        d = r[name]
        lines.append(f"{name:<10} {d['exact']:>6} {d['misread']:>8} {d['missed']:>7} {d['duplicates']:>6} {d['false_reads']:>6}")
    lines.append(r["reason"])
    if "bundle" in r:
        b = r["bundle"]
        lines.append(f"bundle: {b['path']} (version {b['version']}, {b['files']} files, {b['bytes']} bytes); "
                     "install with: alpr-unit update apply BUNDLE")
    lines.append(f"{r['seconds']:.0f} s in all, {r['training']['train_seconds']:.0f} s of it training")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
