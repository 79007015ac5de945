"""``auditsvc-sdk survey``: messages per second on one core.

Generates the synthetic mixed corpus of ``tests/survey_corpus.py`` (HL7 v2
single files, batches, an MLLP capture, Mirth and other XML exports, FHIR
JSON and NDJSON) with 10,000 HL7 v2 messages and 1,000 FHIR documents in a
temporary directory, pins this process to one CPU, and times
``auditsvc_sdk.survey.survey()`` over it end to end: reading and framing
the files, the survey's own counts, the SDK helpers on every message, and
the report. Rendering the HTML and the terminal report is timed apart.
Reading alone (framing, no counts, no helpers) is timed too, so the share of
each part shows.

Target (issue 18): 10,000 messages in under a minute on one core.
"""

from __future__ import annotations

import argparse
import io
import os
import tempfile
import time
from pathlib import Path

from auditsvc_sdk.survey import read_paths, render_html, render_terminal, survey
from rich.console import Console

from tests.survey_corpus import generate

from ._common import code_facts, machine_facts, print_table, write_results

DEFAULT_MESSAGES = 10_000
QUICK_MESSAGES = 2_000
TARGET_SECONDS_PER_10K = 60.0


def _pin_one_core() -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=None, help=f"HL7 v2 messages (default {DEFAULT_MESSAGES})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MESSAGES} messages")
    parser.add_argument("--rounds", type=int, default=3, help="timed runs; the best is reported (default 3)")
    args = parser.parse_args()
    messages = args.messages or (QUICK_MESSAGES if args.quick else DEFAULT_MESSAGES)
    fhir = messages // 10
    cpu = _pin_one_core()
    with tempfile.TemporaryDirectory(prefix="survey-bench-") as tmp:
        corpus = Path(tmp)
        generate(corpus, messages=messages, fhir=fhir, seed=18)
        read_times, survey_times = [], []
        report: dict = {}
        for _ in range(args.rounds):
            start = time.perf_counter()
            items = sum(1 for _ in read_paths([corpus]))
            read_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            report = survey([corpus])
            survey_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        page = render_html(report)
        render_terminal(report, Console(file=io.StringIO(), width=160))
        render_seconds = time.perf_counter() - start
    inputs = report["inputs"]["hl7v2_messages"] + report["inputs"]["fhir_documents"]
    best = min(survey_times)
    per_10k = best * 10_000 / inputs
    results = {
        "hl7v2_messages": report["inputs"]["hl7v2_messages"],
        "fhir_documents": report["inputs"]["fhir_documents"],
        "items_read": items,
        "pinned_cpu": cpu,
        "survey_seconds": survey_times,
        "read_only_seconds": read_times,
        "render_seconds": render_seconds,
        "html_bytes": len(page),
        "messages_per_second": inputs / best,
        "seconds_per_10000_messages": per_10k,
        "target_seconds_per_10000": TARGET_SECONDS_PER_10K,
        "meets_target": per_10k < TARGET_SECONDS_PER_10K,
        "machine": machine_facts(),
        "code": code_facts(),
    }
    name = "survey" if messages == DEFAULT_MESSAGES else f"survey-{messages}msg"
    path = write_results(name, results)
    print_table(
        f"auditsvc-sdk survey, {inputs:,} messages ({messages:,} HL7 v2 + {fhir:,} FHIR), one core",
        [
            ("survey, best of runs", f"{best:.2f} s"),
            ("messages per second", f"{inputs / best:,.0f}"),
            ("seconds per 10,000 messages", f"{per_10k:.1f} s (target < {TARGET_SECONDS_PER_10K:.0f} s)"),
            ("reading and framing alone", f"{min(read_times):.2f} s"),
            ("rendering HTML + terminal", f"{render_seconds:.2f} s"),
            ("results", str(path)),
        ],
    )


if __name__ == "__main__":
    main()
