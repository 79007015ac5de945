"""``auditsvc-sdk``: the SDK's command line. ``auditsvc-sdk survey PATH...`` surveys a site's traffic.

Exit status: 0 surveyed, 2 bad arguments (a path that does not exist, an
unknown time zone, a malformed ``--system``). The report goes to the terminal unless ``--json -``
takes standard output; a progress bar goes to standard error when it is a
terminal (``--no-progress`` turns it off).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ._survey import Survey
from ._survey_read import iter_files, read_bytes
from ._survey_render import render_html, render_terminal
from ._survey_settings import SurveySettings

EXIT_OK = 0
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="auditsvc-sdk", description="auditsvc SDK tools")
    commands = parser.add_subparsers(dest="command", required=True)
    survey = commands.add_parser(
        "survey",
        help="assess a site's captured HL7 v2 / FHIR traffic before go-live (counts and shapes only, no PHI)",
        description="Read HL7 v2 files and batches, MLLP captures, Mirth/Rhapsody XML message exports and FHIR "
        "JSON (resources, Bundles, NDJSON) under PATH..., run the SDK's helpers on every message as a channel "
        "would, and report what they make of the traffic and the settings to use. Runs locally; prints counts, "
        "codes and value shapes only, never a value.",
    )
    survey.add_argument("paths", metavar="PATH", nargs="+", help="files or directories (searched recursively)")
    survey.add_argument("--json", metavar="FILE", help="write the report as JSON ('-' for standard output)")
    survey.add_argument("--html", metavar="FILE", help="write the report as one self-contained HTML file")
    survey.add_argument("--default-tz", metavar="ZONE", help="IANA zone the helpers read offset-less times in")
    survey.add_argument(
        "--default-authority", metavar="AUTHORITY", help="assigning authority of identifiers without CX-4"
    )
    survey.add_argument("--source", metavar="SYSTEM", help="the channel's source system id (overrides MSH-3/4)")
    survey.add_argument(
        "--placeholder", metavar="VALUE", action="append", default=[], help="one more placeholder value (repeat)"
    )
    survey.add_argument(
        "--system",
        metavar="SPELLING=SYSTEM",
        action="append",
        default=[],
        help="map an authority or system spelling to a canonical system (repeat)",
    )
    survey.add_argument("--fhir-base", metavar="URL", help="the FHIR server's base URL, for relative references")
    survey.add_argument("--no-progress", action="store_true", help="no progress bar")
    survey.add_argument("--quiet", action="store_true", help="no terminal report")
    return parser


def _run(args: argparse.Namespace, err: Console) -> Survey:
    systems = {}
    for pair in args.system:
        spelling, sep, system = pair.partition("=")
        if not sep or not spelling.strip() or not system.strip():
            raise ValueError(f"--system {pair!r}: expected SPELLING=SYSTEM")
        systems[spelling.strip()] = system.strip()
    settings = SurveySettings(
        default_tz=args.default_tz,
        default_authority=args.default_authority,
        source=args.source,
        fhir_base=args.fhir_base,
        placeholders=frozenset(args.placeholder),
        systems=systems,
    )
    run = Survey(settings)
    files = list(iter_files(args.paths))
    show = not args.no_progress and err.is_terminal
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    # The bar moves by bytes read (known before reading), each file's share spread over its messages.
    with Progress(*columns, console=err, disable=not show, transient=True) as progress:
        task = progress.add_task("surveying", total=sum(max(f.stat().st_size, 1) for f in files))
        for path in files:
            size = max(path.stat().st_size, 1)
            try:
                items = list(read_bytes(path.read_bytes()))
            except OSError:
                run.unreadable["file-unreadable"] += 1
                progress.advance(task, size)
                continue
            step = size / max(len(items), 1)
            for item in items:
                run.add(item)
                progress.update(
                    task, advance=step, description=f"surveying: {run.hl7.messages + run.fhir.documents} messages"
                )
            if not items:
                progress.advance(task, size)
    return run


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    err = Console(stderr=True)
    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        err.print(f"auditsvc-sdk survey: no such file or directory: {', '.join(missing)}", markup=False)
        return EXIT_USAGE
    try:
        run = _run(args, err)
    except ValueError as exc:  # an unknown time zone, a malformed --system
        err.print(f"auditsvc-sdk survey: {exc}", markup=False)
        return EXIT_USAGE
    report = run.report()
    if args.json == "-":
        sys.stdout.write(json.dumps(report, indent=2) + "\n")
    elif args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.html:
        Path(args.html).write_text(render_html(report), encoding="utf-8")
    if not args.quiet and args.json != "-":
        render_terminal(report, Console())
    return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
