"""The ensemble members behind the README's accuracy table: fetch, check, retrain, keep, record.

Each member is a run folder, benchmarks/members/DESIGN/member-I. Its recipe (config.json,
meta.json, history.csv, state.json, train.log) is in git; its weights and its test predictions
(model.keras, metrics.json, and checkpoint.keras for a member stopped before its last epoch)
are not: they are one release asset of about 33 MB, and benchmarks/members/MANIFEST.sha256
lists every one of those files with its sha256. The asset's own sha256 is recorded in
benchmarks/members/README.md, which says where to download it.

Usage:
    python benchmarks/members.py fetch URL_OR_PATH     # the asset -> beside the recipes, checked
    python benchmarks/members.py retrain --only best-e40 --dry-run   # the commands, no training
    python benchmarks/members.py retrain [--only DESIGN] [--out runs/members]
    python benchmarks/members.py keep runs/ENS/members benchmarks/members/NAME
    python benchmarks/members.py pack OUT.tar.gz       # a new asset (and MANIFEST.sha256)
    python benchmarks/members.py record                # the members' errors -> measured.json

fetch and pack take seconds; retrain trains every member again from its config.json, seed and
fold (about 11 minutes a `best` member on a 2-core AVX-512 EPYC, 60-80 s an epoch on AVX2),
through mnistlab's own trial runner, one `mnistlab train` process a member.
"""

from __future__ import annotations

import argparse
import glob
import gzip
import hashlib
import json
import os
import re
import shutil
import statistics
import sys
import tarfile
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))

from mnistlab.core import runs  # noqa: E402

MEMBERS = os.path.join(HERE, "members")  # DESIGN/member-I run folders
MANIFEST = "MANIFEST.sha256"  # sha256sum's format: "HASH  DESIGN/member-I/FILE", one a line
README = "README.md"  # records the asset's sha256, as "sha256 `HASH`"
ASSET_FILES = (runs.MODEL_FILE, runs.CHECKPOINT_FILE, runs.METRICS_FILE)  # in the asset, not git
LEFT_BEHIND = {runs.CHECKPOINT_FILE, runs.LOCK_FILE}  # training state a finished member drops
CHUNK = 1 << 20  # bytes read at a time when hashing or downloading


def sha256_of(source) -> str:
    """The sha256 of a file, given its path or an open binary file."""
    digest = hashlib.sha256()
    handle = open(source, "rb") if isinstance(source, str) else source
    with handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def asset_files(root: str) -> list[str]:
    """The asset's files found under root (DESIGN/member-I/FILE, sorted), wherever they are."""
    found = []
    for folder in sorted(glob.glob(os.path.join(root, "*", "member-*"))):
        for name in ASSET_FILES:
            if os.path.exists(os.path.join(folder, name)):
                found.append(os.path.relpath(os.path.join(folder, name), root))
    return found


def read_manifest(root: str) -> dict[str, str]:
    """{DESIGN/member-I/FILE: sha256} from root/MANIFEST.sha256; {} where there is none."""
    path = os.path.join(root, MANIFEST)
    if not os.path.exists(path):
        return {}
    with open(path) as handle:
        return {name: digest for digest, name in (line.split() for line in handle if line.strip())}


def missing(root: str = MEMBERS) -> list[str]:
    """The manifest's files not (yet) beside the recipes: [] once the asset is fetched."""
    return [name for name in read_manifest(root) if not os.path.exists(os.path.join(root, name))]


def recorded_sha256(root: str) -> str:
    """The asset's sha256 as root/README.md records it ("sha256 `HASH`")."""
    with open(os.path.join(root, README)) as handle:
        found = re.findall(r"sha256 `([0-9a-f]{64})`", handle.read())
    if len(found) != 1:
        raise ValueError(
            f"{os.path.join(root, README)} should record one asset sha256 "
            f'("sha256 `HASH`"), found {len(found)}.'
        )
    return found[0]


def pack(root: str, out: str) -> str:
    """Writes root/MANIFEST.sha256 and the asset out (.tar.gz) of root's weights; its sha256.

    The archive is reproducible: sorted names, no owners, times or modes from this machine, so
    the same files always give the same sha256.
    """
    names = asset_files(root)
    if not names:
        raise ValueError(f"No member weights ({', '.join(ASSET_FILES)}) under {root}/*/member-*.")
    lines = [f"{sha256_of(os.path.join(root, name))}  {name}\n" for name in names]
    with open(os.path.join(root, MANIFEST), "w") as handle:
        handle.writelines(lines)
    with open(out, "wb") as raw, gzip.GzipFile("", "wb", fileobj=raw, mtime=0) as zipped:
        with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as archive:
            for name in names:
                info = tarfile.TarInfo(name)
                info.size = os.path.getsize(os.path.join(root, name))
                info.mode = 0o644
                with open(os.path.join(root, name), "rb") as handle:
                    archive.addfile(info, handle)
    return sha256_of(out)


def _open_asset(source: str, root: str) -> str:
    """A local path to the asset: source itself, or a download of it into root."""
    if not re.match(r"https?://", source):
        if not os.path.isfile(source):
            raise ValueError(f"No asset at '{source}': give the .tar.gz's path or its URL.")
        return source
    partial = os.path.join(root, ".asset.partial")
    with urllib.request.urlopen(source) as response, open(partial, "wb") as handle:
        shutil.copyfileobj(response, handle, CHUNK)
    return partial


def fetch(source: str, root: str, expected_sha256: str) -> list[str]:
    """Unpacks the asset's weights beside root's recipes, each checked against the manifest.

    Args:
        source: the asset's path or an http(s) URL.
        root: the members folder (its MANIFEST.sha256 and DESIGN/member-I recipes).
        expected_sha256: the asset's recorded sha256; any other asset is refused.

    Returns:
        The files written (DESIGN/member-I/FILE); ones already there and intact are left.
    """
    manifest = read_manifest(root)
    if not manifest:
        raise ValueError(f"No {MANIFEST} in {root}: it lists the files the asset must hold.")
    path = _open_asset(source, root)
    try:
        actual = sha256_of(path)
        if actual != expected_sha256:
            raise ValueError(
                f"The asset '{source}' has sha256 {actual}, not the recorded {expected_sha256}: "
                "a different or damaged file. Download it again, or record the new asset's "
                f"sha256 in {os.path.join(root, README)} if it replaces the old one."
            )
        written = []
        with tarfile.open(path, "r:gz") as archive:
            entries = archive.getmembers()
            strangers = sorted(e.name for e in entries if e.name not in manifest or not e.isfile())
            if strangers:
                raise ValueError(f"The asset holds files {MANIFEST} does not list: {strangers}.")
            for entry in entries:
                target = os.path.join(root, entry.name)
                if os.path.exists(target) and sha256_of(target) == manifest[entry.name]:
                    continue
                if not os.path.isdir(os.path.dirname(target)):
                    raise ValueError(f"No recipe folder for {entry.name} under {root}.")
                partial = target + ".partial"  # renamed into place once checked
                with archive.extractfile(entry) as packed, open(partial, "wb") as handle:
                    shutil.copyfileobj(packed, handle, CHUNK)
                if sha256_of(partial) != manifest[entry.name]:
                    os.remove(partial)
                    raise ValueError(f"{entry.name} in the asset does not match {MANIFEST}.")
                os.replace(partial, target)
                written.append(entry.name)
    finally:
        if path != source:
            os.remove(path)
    absent = missing(root)
    if absent:
        raise ValueError(f"The asset lacks {len(absent)} files {MANIFEST} lists: {absent[:3]}...")
    return written


def member_folders(root: str, only: str | None = None) -> list[str]:
    """root's DESIGN/member-I folders with a config.json, by design then member number.

    Args:
        only: a design folder (best-e40) or a model name (best); None for every member.
    """
    folders = glob.glob(os.path.join(root, "*", "member-*", runs.CONFIG_FILE))
    folders = sorted(
        (os.path.dirname(path) for path in folders),
        key=lambda folder: (os.path.dirname(folder), int(folder.rsplit("-", 1)[1])),
    )
    if only is None:
        return folders
    chosen = [
        folder
        for folder in folders
        if only
        in (
            os.path.basename(os.path.dirname(folder)),
            runs.read_json(os.path.join(folder, runs.CONFIG_FILE))["model"],
        )
    ]
    if not chosen:
        designs = sorted({os.path.basename(os.path.dirname(folder)) for folder in folders})
        raise ValueError(f"No members of '{only}' under {root}. Designs: {', '.join(designs)}.")
    return chosen


def retrain_trials(root: str, out: str, only: str | None = None, data: str | None = None):
    """One mnistlab.train trial a member: its recorded config (seed, fold), backend, a new folder."""
    trials = []
    for folder in member_folders(root, only):
        config = runs.read_json(os.path.join(folder, runs.CONFIG_FILE))
        meta = runs.read_json(os.path.join(folder, runs.META_FILE))
        design, member = folder.split(os.sep)[-2:]
        trial = {**config, "out": os.path.join(out, design, member)}
        trial["backend"] = meta["versions"]["backend"]
        if data:
            trial["data"] = data
        trials.append(trial)
    return trials


def keep(source: str, target: str) -> list[str]:
    """Copies each finished member folder of source into target; returns the names it copied.

    Each is copied whole but for its checkpoint and lock, and its model.keras is loaded without
    compiling and saved again, which drops the optimizer's state (Adam's two moments a weight:
    2.0 MB a `best` network with them, 0.7 MB without). Unfinished members (no metrics.json)
    and members already kept are left alone.
    """
    from mnistlab.models.saved import load_model

    kept = []
    for name in sorted(os.listdir(source)):
        member, copy = os.path.join(source, name), os.path.join(target, name)
        if not os.path.exists(os.path.join(member, runs.METRICS_FILE)) or os.path.exists(copy):
            continue
        partial = copy + ".partial"  # renamed into place last: a kill leaves no half member
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        for file in sorted(set(os.listdir(member)) - LEFT_BEHIND - {runs.MODEL_FILE}):
            shutil.copy2(os.path.join(member, file), os.path.join(partial, file))
        model = load_model(os.path.join(member, runs.MODEL_FILE), compile=False)
        model.save(os.path.join(partial, runs.MODEL_FILE))
        os.rename(partial, copy)
        kept.append(name)
    return kept


def member_errors(root: str) -> dict[str, list[dict]]:
    """Each model's finished members under root/*/member-*: test error and recipe.

    Raises:
        ValueError: when the manifest lists metrics.json files that are not fetched.
    """
    absent = [name for name in missing(root) if name.endswith(runs.METRICS_FILE)]
    if absent:
        raise ValueError(
            f"{len(absent)} members' {runs.METRICS_FILE} are not fetched (they come with the "
            f"weights): run python benchmarks/members.py fetch URL_OR_PATH first."
        )
    found: dict[str, list[dict]] = {}
    for folder in sorted(glob.glob(os.path.join(root, "*", "member-*"))):
        metrics_path = os.path.join(folder, runs.METRICS_FILE)
        if not os.path.exists(metrics_path):
            continue  # unfinished: a checkpoint kept for a later session
        with open(os.path.join(folder, runs.CONFIG_FILE)) as handle:
            config = json.load(handle)
        with open(metrics_path) as handle:
            error = json.load(handle)["error"]
        found.setdefault(config["model"], []).append(
            {"error": error, "epochs": config["epochs"], "folder": folder}
        )
    return found


def registered_epochs(model: str) -> int | None:
    """The epochs of the model's registered recipe (what `mnistlab train MODEL` runs)."""
    from mnistlab.models.registry import get_spec

    try:
        return (get_spec(model).recipe or {}).get("epochs")
    except (KeyError, ValueError):
        return None  # not a registered model: no recipe to prefer


def summarise(found: dict[str, list[dict]]) -> dict:
    """measured.json rows: error_mean, error_std (sample), runs and where they come from.

    Where a model's members trained for its registered recipe's epochs, only those count (a
    variant such as `best5` for 80 epochs is kept beside them, not mixed in).

    Raises:
        ValueError: when one model's members trained for different numbers of epochs, none of
            them the registered recipe's, so that their mean would mix two recipes.
    """
    rows = {}
    for model, members in sorted(found.items()):
        recipe = registered_epochs(model)
        if recipe is not None and any(member["epochs"] == recipe for member in members):
            # the registry's own recipe; variants of it (best5 for 80 epochs) are kept beside
            members = [member for member in members if member["epochs"] == recipe]
        epochs = sorted({member["epochs"] for member in members})
        if len(epochs) > 1:
            raise ValueError(
                f"The kept '{model}' members trained for {epochs} epochs: one recipe per model, "
                "please (move the others out of the members folder)."
            )
        errors = [member["error"] for member in members]
        rows[model] = {
            "error_mean": statistics.mean(errors),
            "error_std": statistics.stdev(errors) if len(errors) > 1 else 0.0,
            "runs": len(errors),
            "epochs": epochs[0],
            "source": sorted({os.path.dirname(member["folder"]) for member in members}),
        }
    return rows


def record(root: str, out: str) -> dict:
    """Writes the members' per-model test errors into out (measured.json); returns the rows.

    `mnistlab models` shows them in its "ours" column. It trains nothing and reads no test
    image: the errors are the ones the members recorded when they finished.
    """
    rows = summarise(member_errors(root))
    if not rows:
        raise ValueError(f"No finished members under {root}.")
    for row in rows.values():  # paths as the repository names them, wherever it lies
        row["source"] = [os.path.relpath(path, os.path.dirname(HERE)) for path in row["source"]]
    try:
        with open(out) as handle:
            recorded = json.load(handle)
    except FileNotFoundError:
        recorded = {}
    runs.write_json(out, {**recorded, **rows})
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    from mnistlab.models.registry import MEASURED_FILE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", default=MEMBERS, help="members folder (default: the repo's)")
    commands = parser.add_subparsers(dest="command", required=True)
    fetch_parser = commands.add_parser("fetch", help="unpack the asset's weights, checked")
    fetch_parser.add_argument("source", help="the asset's URL or path (members-v1.tar.gz)")
    pack_parser = commands.add_parser("pack", help="build an asset from the members' weights")
    pack_parser.add_argument("out", help="the .tar.gz to write")
    retrain_parser = commands.add_parser("retrain", help="train the members again from recipes")
    retrain_parser.add_argument("--only", help="one design folder (best-e40) or model (best)")
    retrain_parser.add_argument("--out", default="runs/members", help="where the new ones go")
    retrain_parser.add_argument("--data", help="MNIST folder or mnist.npz ($MNISTLAB_DATA)")
    retrain_parser.add_argument("--dry-run", action="store_true", help="print, do not train")
    keep_parser = commands.add_parser("keep", help="copy finished members, without optimizers")
    keep_parser.add_argument("source", help="an ensemble's members folder, e.g. runs/ENS/members")
    keep_parser.add_argument("target", help="where to keep them, e.g. benchmarks/members/NAME")
    record_parser = commands.add_parser("record", help="members' test errors -> measured.json")
    record_parser.add_argument("--out", default=MEASURED_FILE, help="measured.json to update")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    root = args.members
    try:
        if args.command == "fetch":
            written = fetch(args.source, root, recorded_sha256(root))
            print(f"{len(written)} files written, {len(read_manifest(root))} checked in {root}")
        elif args.command == "pack":
            print(f"{pack(root, args.out)}  {args.out}")
        elif args.command == "retrain":
            from mnistlab.training.executors import run_trials, trial_command

            trials = retrain_trials(root, args.out, args.only, args.data)
            if args.dry_run:
                for trial in trials:
                    print(" ".join(["python", *trial_command(trial, resume=False)[1:]]))
                return 0
            results = run_trials(trials)
            for result in results:
                print(f"{result['out']}: {result['status']}, test error {result.get('test_error')}")
            if any(result["status"] != "ok" for result in results):
                return 1
        elif args.command == "keep":
            if not os.path.isdir(args.source):
                raise ValueError(f"'{args.source}' is not a folder of member runs.")
            os.makedirs(args.target, exist_ok=True)
            kept = keep(args.source, args.target)
            print(f"kept {len(kept)}: {', '.join(kept) or 'none new'}")
        elif args.command == "record":
            for model, row in record(root, args.out).items():
                print(
                    f"{model}: {row['error_mean']:.3f}% ± {row['error_std']:.3f} over {row['runs']}"
                )
    except (ValueError, OSError, tarfile.TarError) as error:
        print(f"members {args.command}: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
