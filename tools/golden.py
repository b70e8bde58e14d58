"""`python -m tools golden build|import|show`: the golden set every fine-tuning run is judged on.

    build   a new version from the reviewed label lines (labels/reviewed/): a deterministic hash
            share of the reviewed articles (default 20%), added to the current version
    import  a new version from a labelled JSONL file (validated first), added to the current one
    show    the current manifest and its articles per category

ExportDataset leaves every article of the current version out of training and validation;
Evaluate scores the candidate and the active model on it (docs/finetuning.md#golden-set).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import boto3

from categorizer.finetune import golden
from categorizer.finetune.dataset import SourceLine, parse_labelled
from categorizer.finetune.errors import DatasetInvalid
from categorizer.finetune.storage import RunStore
from categorizer.taxonomy import bundled_taxonomy
from tools.stack import StackOutputs, add_stack_argument

Emit = Callable[[str], None]


def build(store: RunStore, prefix: str, share: float) -> golden.GoldenManifest:
    articles, _ = parse_labelled(store.lines(store.label_keys(golden.REVIEWED_PREFIX)))
    chosen = golden.golden_share(articles, share)
    return golden.publish(
        store, prefix, chosen, source=f"{golden.REVIEWED_PREFIX}: {len(chosen)} of {len(articles)} lines, share {share}"
    )


def import_file(
    store: RunStore, prefix: str, path: Path, taxonomy_version: str | None, *, replace: bool
) -> golden.GoldenManifest:
    lines = path.read_text(encoding="utf-8").splitlines()
    articles, _ = parse_labelled(SourceLine(f"{path.name}:{n}", line) for n, line in enumerate(lines, 1))
    if taxonomy_version is not None:
        known = bundled_taxonomy(taxonomy_version).by_id
        unknown = sorted({a.category_id for a in articles if a.category_id not in known})
        if unknown:
            raise DatasetInvalid(f"category ids not in taxonomy {taxonomy_version}: {unknown}")
    return golden.publish(store, prefix, articles, source=f"import:{path.name}", replace=replace)


def show(store: RunStore, prefix: str, emit: Emit) -> int:
    manifest = golden.current_manifest(store, prefix)
    if manifest is None:
        emit(f"no golden set under {store.uri(prefix)} (python -m tools golden build|import)")
        return 1
    emit(manifest.model_dump_json(indent=2))
    per_category = Counter(a.category_id for a in golden.load_articles(store, manifest.ref()))
    for category_id, count in sorted(per_category.items()):
        emit(f"{category_id}\t{count}")
    return 0


def main(argv: list[str] | None = None, emit: Emit = print) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools golden", description=__doc__.split("\n\n")[0])
    add_stack_argument(parser)
    parser.add_argument("--bucket", help="(or PIPELINE_BUCKET; default the stack's PipelineBucketName)")
    parser.add_argument("--prefix", default="golden/", help="the deployed GOLDEN_PREFIX (default golden/)")
    commands = parser.add_subparsers(dest="command", required=True)
    building = commands.add_parser("build", help="a new version from labels/reviewed/")
    building.add_argument("--share", type=float, default=golden.DEFAULT_SHARE, help="share of reviewed articles")
    importing = commands.add_parser("import", help="a new version from a labelled JSONL file")
    importing.add_argument("file", type=Path)
    importing.add_argument("--taxonomy-version", help="also check every category id against this taxonomy")
    importing.add_argument("--replace", action="store_true", help="the file alone, not added to the current set")
    commands.add_parser("show", help="the current version")

    args = parser.parse_args(argv)
    bucket = StackOutputs(args.stack_name).resolve(args.bucket, "PIPELINE_BUCKET", "PipelineBucketName")
    store = RunStore(boto3.client("s3"), bucket)
    if args.command == "show":
        return show(store, args.prefix, emit)
    if args.command == "build" and not 0 < args.share <= 1:
        raise SystemExit("error: --share must be in (0, 1]")
    try:
        manifest = (
            build(store, args.prefix, args.share)
            if args.command == "build"
            else import_file(store, args.prefix, args.file, args.taxonomy_version, replace=args.replace)
        )
    except DatasetInvalid as error:
        emit(f"error: {error}")
        return 1
    emit(f"golden v{manifest.version}: {manifest.count} articles → {store.uri(manifest.key)} ({manifest.source})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
