"""`python -m hil sweep`: vehicles read exact / misread / unread / false / duplicate at each setting of the
unit's recognition thresholds, on sets of clips.

    python -m hil sweep --set valid=/tmp/v/us,/tmp/v/eu,/tmp/v/br --set demo=hil/clips [--cache DIR] [--json]

How. For each `framings` value the clips run once through the real harness (`hil.harness`: the unit
service, its bursts and recognition stage, the uplink, a central store on loopback) with every
threshold at 0, and each closed burst's voting frame reads are recorded (`RecognitionStage.burst_listeners`).
Every setting of `min_det_score`, `min_frame_confidence`, `min_read_confidence` and
`low_confidence_reads` is then replayed from those records through the unit's own threshold code
(`unit.vote.frame_votes`, `decide`, `Deduper`) and scored by the harness's own rule (`hil.report.score`),
which is cheap. The thresholds only filter and vote what the recogniser gave, so the replay is what the
unit would do; `--real` checks that by running the named settings (by default the unit's defaults, the
ones in `unit.config`) through the real harness again and printing both; the exit status is 1 when
they differ, 2 for a usage error.

The records can be kept (`--cache DIR`): they are reused only for the same clips and the same models
(the recogniser's `versions()`), so after a new reader ships the same command measures it.

`--choose` applies the rule docs/unit-config.md states (written before the sweep was first read): among
settings that read every demo vehicle exactly with no false read and no duplicate, and add no false read
or duplicate on the other sets against the unit's defaults, (1) the framings / min_det_score /
min_frame_confidence with the most exact reads on the first set at min_read_confidence 0, then fewest
unread, then fewest misread, then the unit's current value; (2) the highest min_read_confidence that
keeps at least 98 % of those exact reads; (3) low_confidence_reads on when, on the first set, at least
half of the reads it adds are exact or findable (the true plate among the read's candidates, or within
one character of the read, which a partial search with one `?` finds) and it adds no false read or
duplicate on any set.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import logging
import shutil
import sys
import tempfile
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from unit import clips as clips_mod
from unit.config import RecognitionConfig
from unit.recognise import Candidate, PlateRead
from unit.vote import (BELOW_THRESHOLD, LOW_CONFIDENCE_READ, NO_PLATE, Deduper, Thresholds, decide, edits,
                       frame_votes)

from hil.report import ReadItem, Report, score

FRAMINGS = (1, 2)
MIN_DET = (0.3, 0.4, 0.5)          # below the detector card's own 0.35 changes nothing
MIN_FRAME = (0.0, 0.1, 0.2, 0.3)
MIN_READ = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
KEEP_EXACT = 0.98                   # (2) of the rule: share of the exact reads a min_read_confidence must keep


@dataclass
class Burst:
    lane: str
    t: float                        # its sensor edge, seconds from the clip's start
    frames: int
    reads: list[PlateRead]          # the voting frame reads with every threshold at 0 (crops dropped)


@dataclass
class ClipRecord:
    path: str
    bursts: list[Burst] = field(default_factory=list)


@dataclass(frozen=True)
class Setting:
    framings: int
    min_det_score: float
    min_frame_confidence: float
    min_read_confidence: float
    low_confidence_reads: bool

    def label(self) -> str:
        return (f"framings {self.framings}, det {self.min_det_score:g}, frame {self.min_frame_confidence:g}, "
                f"read {self.min_read_confidence:g}, low-conf reads {'on' if self.low_confidence_reads else 'off'}")

    def toml(self) -> dict[str, Any]:
        return {"framings": self.framings, "min_det_score": self.min_det_score,
                "min_frame_confidence": self.min_frame_confidence, "min_read_confidence": self.min_read_confidence,
                "low_confidence_reads": self.low_confidence_reads}


def default_setting(rec: RecognitionConfig | None = None) -> Setting:
    rec = rec or RecognitionConfig()
    return Setting(rec.framings, rec.min_det_score, rec.min_frame_confidence, rec.min_read_confidence,
                   rec.low_confidence_reads)


# ---- recording: the real harness, thresholds at 0 -------------------------------------------------------

def _read_json(r: PlateRead) -> dict[str, Any]:
    return {"box": list(r.box), "text": r.text, "confidence": r.confidence, "det_score": r.det_score,
            "region": r.region, "candidates": [[c.plate, c.score] for c in r.candidates]}


def _read_from(d: dict[str, Any]) -> PlateRead:
    return PlateRead(tuple(d["box"]), d["text"], d["confidence"], [Candidate(p, s) for p, s in d["candidates"]],
                     d["det_score"], d["region"])


def run_harness(paths: list[Path], recognition: dict[str, Any], base: dict[str, Any] | None = None,
                on_burst: Any = None, central: Any = None) -> Report:
    """The clips through `hil.harness.Harness`, as `python -m hil run` does: into `central` (a running
    `hil.central.LocalCentral`), else into a store of its own started for the run."""
    from hil.central import LocalCentral, enrol_unit
    from hil.harness import Harness, Options, merge

    doc = merge(base or {}, {"recognition": recognition})
    tmp = Path(tempfile.mkdtemp(prefix="alpr-sweep-"))
    own = None
    try:
        if central is None:
            central = own = LocalCentral(tmp / "central", log=tmp / "central.log").start()
        enrolment = enrol_unit(central.url, central.token("HIL"), f"hil-sweep-{uuid.uuid4().hex[:8]}", tmp / "identity")
        opts = Options(base_config=doc, workdir=tmp)
        return Harness(enrolment, central.db_url, opts, on_burst=on_burst).run(paths)
    finally:
        if own is not None:
            own.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def record(paths: list[Path], framings: int, base: dict[str, Any] | None = None,
           central: Any = None) -> tuple[list[ClipRecord], dict[str, str], Report]:
    """Every burst's voting frame reads, thresholds at 0, and the models that read them."""
    records: dict[str, ClipRecord] = {str(p): ClipRecord(str(p)) for p in paths}

    def on_burst(run: Any, trig: Any, reads: list[PlateRead], frames: int) -> None:
        rec = records.setdefault(str(run.clip.path), ClipRecord(str(run.clip.path)))
        rec.bursts.append(Burst(trig.lane, round(trig.edge_t - run.start, 3), frames,
                                [replace(r, crop=None) for r in reads]))

    zero = {"framings": framings, "min_det_score": 0.0, "min_frame_confidence": 0.0, "min_read_confidence": 0.0,
            "low_confidence_reads": False}
    report = run_harness(paths, zero, base, on_burst, central)
    errors = [c.error for c in report.clips if c.error]
    if errors:
        raise RuntimeError(f"recording with framings {framings}: {errors[0]}")
    return list(records.values()), report.models, report


def _cache_key(paths: list[Path], framings: int, versions: dict[str, str], base: dict[str, Any] | None) -> str:
    h = hashlib.sha256()
    for p in paths:
        h.update(str(p.resolve()).encode())
        for f in sorted((p / clips_mod.FRAMES_DIR).glob("*")):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}".encode())
    h.update(json.dumps([framings, versions, (base or {}).get("recognition", {})], sort_keys=True).encode())
    return h.hexdigest()[:16]


def _versions(framings: int, base: dict[str, Any] | None) -> dict[str, str]:
    from unit.recognise import from_config
    rec_doc = dict((base or {}).get("recognition", {}))
    rec_doc.update(framings=framings)
    model_dir = rec_doc.get("model_dir", "")
    rec = from_config(RecognitionConfig(model_dir=model_dir, framings=framings,
                                        two_row_plates=rec_doc.get("two_row_plates", True)))
    return {str(k): str(v) for k, v in dict(rec.versions()).items()}


def _recorded(paths: list[Path], framings: int, cache: Path | None, base: dict[str, Any] | None,
              log: Any) -> list[ClipRecord]:
    file = None
    if cache is not None:
        file = cache / f"records-f{framings}-{_cache_key(paths, framings, _versions(framings, base), base)}.json"
        if file.exists():
            log(f"framings {framings}: frame reads from {file}")
            doc = json.loads(file.read_text("utf-8"))
            return [ClipRecord(c["path"], [Burst(b["lane"], b["t"], b["frames"], [_read_from(r) for r in b["reads"]])
                                           for b in c["bursts"]]) for c in doc["clips"]]
    log(f"framings {framings}: recording frame reads of {len(paths)} clips through the harness (thresholds 0)")
    recs, models, _ = record(paths, framings, base)
    if file is not None:
        cache.mkdir(parents=True, exist_ok=True)
        file.write_text(json.dumps({"models": models, "framings": framings, "clips": [
            {"path": c.path, "bursts": [{"lane": b.lane, "t": b.t, "frames": b.frames,
                                         "reads": [_read_json(r) for r in b.reads]} for b in c.bursts]}
            for c in recs]}), "utf-8")
    return recs


# ---- replay: the unit's threshold code on the records ---------------------------------------------------

@dataclass
class Figures:
    vehicles: int = 0
    exact: int = 0
    misread: int = 0
    unread: int = 0
    false_reads: int = 0
    duplicates: int = 0
    unread_plate_found: int = 0     # unread, though a plate was read below min_read_confidence
    low_reads: int = 0              # vehicles whose counted read is marked low-confidence
    low_exact: int = 0
    low_findable: int = 0           # misread, low-confidence, the true plate among candidates or 1 edit away
    misread_findable: int = 0       # every misread so findable

    def add(self, o: "Figures") -> None:
        for k in asdict(self):
            setattr(self, k, getattr(self, k) + getattr(o, k))

    def short(self) -> str:
        return f"{self.exact}/{self.misread}/{self.unread}/{self.false_reads}/{self.duplicates}"


def replay_clip(rec: ClipRecord, clip: clips_mod.Clip, th: Thresholds, window_s: float = 10.0,
                max_edits: int = 1) -> Figures:
    """One clip's reads at `th`, as the recognition stage would store them, scored as the harness scores."""
    dedup = Deduper(window_s, max_edits)
    items: list[ReadItem] = []
    cands: dict[str, list[str]] = {}
    found_below: list[float] = []
    for k, b in enumerate(rec.bursts):
        v, outcome = decide([r for r in b.reads if frame_votes(r, th)], th)
        if outcome == NO_PLATE or v is None:
            continue
        if outcome == BELOW_THRESHOLD:
            found_below.append(b.t)
            continue
        if dedup.seen(b.lane, v.plate, b.t):
            continue
        rid = f"{k}"
        items.append(ReadItem(rid, b.lane, v.plate, v.confidence, b.t, low_confidence=outcome == LOW_CONFIDENCE_READ))
        cands[rid] = [c.plate for c in v.candidates]
    res = score(clip, items, len(items), 0)
    f = Figures(res.vehicles, res.exact, res.misread, res.missed, res.false_reads, res.duplicates)
    f.low_reads, f.low_exact = res.exact_low + res.misread_low, res.exact_low
    truth = clip.truth.vehicles
    for it in res.items:
        if it.verdict == "misread" and it.vehicle is not None:
            plate = truth[it.vehicle].plate
            findable = plate in cands[it.read_id] or edits(it.plate, plate) <= 1
            f.misread_findable += findable
            f.low_findable += findable and it.low_confidence
    tol = clip.truth.tolerance_s
    for plate in res.missed_plates:
        v_t = [v.t for v in truth if v.plate == plate]
        f.unread_plate_found += any(abs(t - vt) <= tol for t in found_below for vt in v_t)
    return f


def settings_grid(framings: tuple[int, ...] = FRAMINGS, det: tuple[float, ...] = MIN_DET,
                  frame: tuple[float, ...] = MIN_FRAME, read: tuple[float, ...] = MIN_READ) -> list[Setting]:
    out = []
    for fr, d, fc, rc in itertools.product(framings, det, frame, read):
        out.append(Setting(fr, d, fc, rc, False))
        if rc > 0:
            out.append(Setting(fr, d, fc, rc, True))
    return out


def replay(sets: dict[str, list[tuple[ClipRecord, clips_mod.Clip]]], s: Setting, base_rec: RecognitionConfig,
           dedup: tuple[float, int]) -> dict[str, Figures]:
    th = Thresholds(s.min_det_score, s.min_frame_confidence, s.min_read_confidence, base_rec.min_chars,
                    base_rec.top_n, s.low_confidence_reads)
    out = {}
    for name, items in sets.items():
        tot = Figures()
        for rec, clip in items:
            tot.add(replay_clip(rec, clip, th, *dedup))
        out[name] = tot
    return out


# ---- the rule ---------------------------------------------------------------------------------------------

def choose(rows: dict[Setting, dict[str, Figures]], current: Setting, first: str, demo: str | None) -> dict[str, Any]:
    """The rule of the module text, on replayed figures. Returns the chosen setting and why."""
    cur = rows[current]

    def feasible(s: Setting) -> bool:
        f = rows[s]
        if demo is not None:
            d = f[demo]
            if d.exact != d.vehicles or d.false_reads or d.duplicates:
                return False
        return all(f[n].false_reads <= cur[n].false_reads and f[n].duplicates <= cur[n].duplicates for n in f)

    base = [s for s in rows if s.min_read_confidence == 0 and not s.low_confidence_reads and feasible(s)]
    if not base:
        return {"chosen": None, "why": "no setting keeps the demo at every vehicle exact with no false read"}

    def near(s: Setting) -> int:
        return ((s.framings != current.framings) + (s.min_det_score != current.min_det_score)
                + (s.min_frame_confidence != current.min_frame_confidence))
    b = max(base, key=lambda s: (rows[s][first].exact, -rows[s][first].unread, -rows[s][first].misread, -near(s)))
    at0 = rows[b][first].exact
    reads = sorted({s.min_read_confidence for s in rows if (s.framings, s.min_det_score, s.min_frame_confidence)
                    == (b.framings, b.min_det_score, b.min_frame_confidence)})
    keep = [r for r in reads if (s := Setting(b.framings, b.min_det_score, b.min_frame_confidence, r, False)) in rows
            and feasible(s) and rows[s][first].exact >= KEEP_EXACT * at0]
    r = max(keep)
    off = Setting(b.framings, b.min_det_score, b.min_frame_confidence, r, False)
    on = replace(off, low_confidence_reads=True)
    decision = {"chosen": off, "base": b, "exact_at_0": at0, "min_read_confidence": r, "low_confidence_reads": False}
    if on in rows:
        added = rows[on][first].low_reads
        good = rows[on][first].low_exact + rows[on][first].low_findable
        clean = all(rows[on][n].false_reads <= rows[off][n].false_reads and rows[on][n].duplicates <= rows[off][n].duplicates
                    for n in rows[on]) and feasible(on)
        decision.update(low_added=added, low_exact=rows[on][first].low_exact, low_findable=rows[on][first].low_findable,
                        low_clean=clean)
        if added and clean and 2 * good >= added:
            decision.update(chosen=on, low_confidence_reads=True)
    return decision


# ---- the command ------------------------------------------------------------------------------------------

def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(",") if x.strip())


def _setting(text: str, current: Setting) -> Setting:
    """`framings=2,det=0.3,frame=0,read=0.1,low=1`: keys not named keep the unit's defaults."""
    names = {"framings": "framings", "det": "min_det_score", "frame": "min_frame_confidence",
             "read": "min_read_confidence", "low": "low_confidence_reads"}
    kw: dict[str, Any] = {}
    for part in text.split(","):
        k, _, v = part.partition("=")
        if k.strip() not in names:
            raise ValueError(f"--real: unknown key {k!r} (known: {', '.join(names)})")
        key = names[k.strip()]
        kw[key] = int(v) if key == "framings" else v.strip().lower() in ("1", "true", "on", "yes") \
            if key == "low_confidence_reads" else float(v)
    return replace(current, **kw)


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("sweep", help="vehicles read at each setting of the recognition thresholds (docs/unit-config.md)",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--set", action="append", required=True, metavar="NAME=CLIPS",
                   help="a named set of clips (clip folders or folders of clips, comma-separated); the first set is chosen on; "
                        "a set named 'demo' must stay every vehicle exact")
    p.add_argument("--config", help="a unit TOML whose tables lie under each run (as `hil run --config`)")
    p.add_argument("--framings", default=",".join(map(str, FRAMINGS)))
    p.add_argument("--min-det", default=",".join(map(str, MIN_DET)))
    p.add_argument("--min-frame", default=",".join(map(str, MIN_FRAME)))
    p.add_argument("--min-read", default=",".join(map(str, MIN_READ)))
    p.add_argument("--cache", help="keep the recorded frame reads here; reused for the same clips and models")
    p.add_argument("--choose", action="store_true", help="apply the rule of docs/unit-config.md and say what it picks")
    p.add_argument("--real", action="append", default=None, metavar="SETTING",
                   help="also run this setting through the real harness (framings=2,det=0.3,frame=0,read=0.1,low=1; "
                        "'default' is the unit's defaults; repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    from hil.harness import load_base_config

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    say = (lambda *a: print(*a, file=sys.stderr, flush=True)) if args.json else (lambda *a: print(*a, flush=True))
    base = load_base_config(args.config)
    base_rec = RecognitionConfig(**{k: v for k, v in ((base or {}).get("recognition") or {}).items()
                                    if k in ("min_chars", "top_n")})
    current = default_setting(RecognitionConfig(**{k: v for k, v in ((base or {}).get("recognition") or {}).items()
                                                   if k in Setting.__dataclass_fields__}))
    dedup_doc = (base or {}).get("dedup") or {}
    dedup = (float(dedup_doc.get("window_s", 10.0)), int(dedup_doc.get("max_edits", 1)))
    sets: dict[str, list[Path]] = {}
    for spec in args.set:
        name, _, folder = spec.partition("=")
        if not name or not folder:
            print(f"hil sweep: --set {spec!r}: expected NAME=CLIPS", file=sys.stderr)
            return 2
        found = clips_mod.find_clips(folder.split(","))
        if not found:
            print(f"hil sweep: --set {name}: no clips in {folder}", file=sys.stderr)
            return 2
        sets[name] = [Path(p) for p in found]
    try:
        framings = tuple(int(x) for x in args.framings.split(","))
        grid = settings_grid(framings, _floats(args.min_det), _floats(args.min_frame), _floats(args.min_read))
        reals = [current if r == "default" else _setting(r, current) for r in (args.real or [])]
    except ValueError as exc:
        print(f"hil sweep: {exc}", file=sys.stderr)
        return 2
    if current not in grid:
        grid.append(current)
    cache = Path(args.cache) if args.cache else None
    every = [p for ps in sets.values() for p in ps]
    loaded = {str(p): clips_mod.load(p) for p in every}
    by_framings: dict[int, dict[str, ClipRecord]] = {}
    for fr in sorted({s.framings for s in grid}):
        recs = _recorded(every, fr, cache, base, say)
        by_framings[fr] = {r.path: r for r in recs}
    rows: dict[Setting, dict[str, Figures]] = {}
    for s in grid:
        recs = by_framings[s.framings]
        named = {n: [(recs.get(str(p), ClipRecord(str(p))), loaded[str(p)]) for p in ps] for n, ps in sets.items()}
        rows[s] = replay(named, s, base_rec, dedup)
    first = next(iter(sets))
    decision = choose(rows, current, first, "demo" if "demo" in sets else None) if args.choose else None
    real_rows: list[dict[str, Any]] = []
    for s in reals:
        say(f"real harness: {s.label()}")
        real: dict[str, Any] = {}
        for n, ps in sets.items():
            t = run_harness(ps, s.toml(), base).total()
            real[n] = {k: t[k] for k in ("vehicles", "exact", "misread", "missed", "false_reads", "duplicates",
                                         "exact_low", "misread_low", "errors")}
        replayed = rows.get(s) or replay({n: [(by_framings[s.framings].get(str(p), ClipRecord(str(p))), loaded[str(p)])
                                              for p in ps] for n, ps in sets.items()}, s, base_rec, dedup)
        agree = all((real[n]["exact"], real[n]["misread"], real[n]["missed"], real[n]["false_reads"],
                     real[n]["duplicates"]) == (replayed[n].exact, replayed[n].misread, replayed[n].unread,
                                                replayed[n].false_reads, replayed[n].duplicates) for n in sets)
        real_rows.append({"setting": s, "real": real, "replay_agrees": agree})
    if args.json:
        print(json.dumps({
            "sets": {n: len(ps) for n, ps in sets.items()}, "current": asdict(current),
            "rows": [{"setting": asdict(s), **{n: asdict(f) for n, f in r.items()}} for s, r in rows.items()],
            "choice": None if decision is None else {k: asdict(v) if isinstance(v, Setting) else v
                                                     for k, v in decision.items()},
            "real": [{**r, "setting": asdict(r["setting"])} for r in real_rows]}, indent=1))
    else:
        print(table(rows, sets, current))
        if decision is not None:
            print(describe(decision, rows, first))
        for r in real_rows:
            print(f"real harness, {r['setting'].label()}: " + "; ".join(
                f"{n} {v['exact']}/{v['misread']}/{v['missed']}/{v['false_reads']}/{v['duplicates']} "
                f"(low-confidence: {v['exact_low']} exact, {v['misread_low']} misread)" for n, v in r["real"].items())
                + ("; the replay agrees" if r["replay_agrees"] else "; THE REPLAY DIFFERS"))
    return 0 if all(r["replay_agrees"] for r in real_rows) else 1


def table(rows: dict[Setting, dict[str, Figures]], sets: dict[str, list[Path]], current: Setting) -> str:
    names = list(sets)
    head = (f"{'fr':>2} {'det':>4} {'frame':>5} {'read':>5} {'low':>3} | "
            + " | ".join(f"{n + ' (' + str(rows[current][n].vehicles) + ')':<34}" for n in names))
    sub = (" " * 25 + "| " + " | ".join(f"{'ex/mis/unr/false/dup':<21}{'low ex/mis':>13}" for _ in names))
    lines = ["per set: vehicles exact / misread / unread / false reads / duplicates; of the reads marked "
             "low-confidence: exact / misread (findable)", head, sub, "-" * len(head)]
    for s, r in sorted(rows.items(), key=lambda kv: (kv[0].framings, kv[0].min_det_score, kv[0].min_frame_confidence,
                                                      kv[0].low_confidence_reads, kv[0].min_read_confidence)):
        cells = []
        for n in names:
            f = r[n]
            low = (f"{f.low_exact}/{f.low_reads - f.low_exact} ({f.low_findable})" if s.low_confidence_reads else "-")
            cells.append(f"{f.short():<21}{low:>13}")
        mark = " *" if s == current else ""
        lines.append(f"{s.framings:>2} {s.min_det_score:>4g} {s.min_frame_confidence:>5g} {s.min_read_confidence:>5g} "
                     f"{'on' if s.low_confidence_reads else 'off':>3} | " + " | ".join(cells) + mark)
    lines.append("* the unit's defaults")
    return "\n".join(lines)


def describe(d: dict[str, Any], rows: dict[Setting, dict[str, Figures]], first: str) -> str:
    if d.get("chosen") is None:
        return "rule: " + d["why"]
    out = [f"rule: (1) {d['base'].label()} reads {d['exact_at_0']} exact on {first} at min_read_confidence 0; "
           f"(2) the highest min_read_confidence keeping >= {KEEP_EXACT:.0%} of them: {d['min_read_confidence']:g}"]
    if "low_added" in d:
        out.append(f"(3) low-confidence reads add {d['low_added']} reads on {first}: {d['low_exact']} exact, "
                   f"{d['low_findable']} misread but findable; no new false read or duplicate: "
                   f"{'yes' if d['low_clean'] else 'no'} -> {'on' if d['low_confidence_reads'] else 'off'}")
    out.append(f"chosen: {d['chosen'].label()}")
    return "\n".join(out)
