"""What `scripts/demo.sh` puts in a fresh central store so a newcomer can use the console at once:
one account per role that uses it (officer, supervisor, commander, auditor, administrator), each with a
random password (printed once, kept nowhere) and a current training record, and a hot-list entry
for a plate that drives through a demo clip, so the replay raises a live alert.

    python -m hil.demo_setup --home HOME [--clip hil/clips/01-day-one-lane] [--json]
"""
from __future__ import annotations

import argparse
import json
import secrets
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from central import audit, db, hotlist, training, users
from central.config import load_settings, resolve_db, resolve_home
from central.keys import load_keys

WHO = audit.system("demo-setup")
AGENCY = "Los Angeles Port Police (demo)"
ACCOUNTS = [("demo.officer", "officer", "Officer", "Demo Officer"),
            ("demo.supervisor", "supervisor", "Sergeant", "Demo Supervisor"),
            ("demo.commander", "commander", "Support Services Division Commander", "Demo Commander"),
            ("demo.auditor", "auditor", "Auditor", "Demo Auditor"),
            ("demo.admin", "admin", "ALPR administrator", "Demo Administrator")]
DEMO_CLIP = Path(__file__).resolve().parent / "clips" / "01-day-one-lane"


def hot_plate(clip: Path) -> str:
    """The first vehicle's plate in the clip's truth: the replay will drive it past the unit."""
    truth = json.loads((clip / "truth.json").read_text())
    return truth["vehicles"][0]["plate"]


def setup(home: Path, clip: Path = DEMO_CLIP) -> dict[str, Any]:
    settings = load_settings(home)
    engine = db.make_engine(resolve_db(home, None))
    audit.sign_with(engine, load_keys(home / "keys"))     # its audit entries carry the store's signature
    today = date.today()
    accounts = []
    try:
        for username, role, title, name in ACCOUNTS:
            password = secrets.token_urlsafe(12)
            users.add(engine, settings, username=username, full_name=name, job_title=title, agency=AGENCY, role=role,
                      password=password, by=WHO)
            training.record(engine, username, "Department-approved ALPR course (demo)", today - timedelta(days=7),
                            today + timedelta(days=358), WHO)
            accounts.append({"username": username, "role": role, "password": password,
                             "training": f"{today - timedelta(days=7)} to {today + timedelta(days=358)}"})
        plate = hot_plate(clip)
        entry = hotlist.add(engine, plate, reason="stolen_vehicle", purpose="stolen_vehicle", case_number="DEMO-0001",
                            source="demo (CLETS SVS in real use)", note="stolen vehicle (demo entry)", by=WHO)
    finally:
        engine.dispose()
    return {"accounts": accounts, "hotlist": {"plate": entry["pattern"], "reason": entry["reason_text"],
                                              "case_number": entry["case_number"], "clip": clip.name}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hil.demo_setup", description=__doc__.split("\n")[0])
    p.add_argument("--home", required=True)
    p.add_argument("--clip", default=str(DEMO_CLIP))
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    done = setup(resolve_home(args.home), Path(args.clip))
    if args.json:
        print(json.dumps(done))
        return 0
    for a in done["accounts"]:
        print(f"  {a['role']:<11} {a['username']:<16} {a['password']}")
    h = done["hotlist"]
    print(f"hot list: {h['plate']} ({h['reason']}, case {h['case_number']}), in clip {h['clip']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
