"""Write the "readme" text of every benchmarks/results/*.json into README.md, between the markers.

    python benchmarks/render_readme.py           # rewrite the results section of README.md
    python benchmarks/render_readme.py --check   # exit 1 if README.md is not what the results say

Only the text between `<!-- results:begin -->` and `<!-- results:end -->` changes; each result file
contributes its block (in ORDER, then file-name order), so the README's numbers are always the measured ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
# The README's order, and a heading for blocks that do not start with one.
ORDER = {
    "personalization": None,
    "peers": None,
    "worlds": None,
    "ppo": "### PPO: update speed, CartPole, optimus-poc and pretraining",
    "ope": None,
    "budget": "### Budget allocation: fit speed and the quality of the split",
    "planning": None,
    "synth": "### Synthetic customers: against CTGAN's TVAE and CTGAN",
    "ray": "### Ray: batch scoring, sweeps and served replicas on these 2 cores",
}


def results_markdown(results: Path) -> str:
    """The blocks of every result file that has a "readme" string."""
    blocks = []
    rank = {name: i for i, name in enumerate(ORDER)}
    for path in sorted(results.glob("*.json"), key=lambda p: (rank.get(p.stem, len(rank)), p.stem)):
        try:
            text = json.loads(path.read_text()).get("readme")
        except (ValueError, AttributeError) as error:
            raise SystemExit(f"error: {path}: not a JSON object ({error})") from None
        if isinstance(text, str) and text.strip():
            text = text.strip()
            if not text.startswith("#") and ORDER.get(path.stem):
                text = f"{ORDER[path.stem]}\n\n{text}"
            blocks.append(f"<!-- from {results.name}/{path.name} -->\n{text}")
    return "\n\n".join(blocks)


def render(readme: str, results: str) -> str:
    """`readme` with the text between the markers replaced by `results`."""
    if readme.count(BEGIN) != 1 or readme.count(END) != 1 or readme.index(BEGIN) > readme.index(END):
        raise SystemExit(f"error: README.md needs exactly one {BEGIN} followed by one {END}")
    head, rest = readme.split(BEGIN)
    _, tail = rest.split(END)
    return f"{head}{BEGIN}\n{results}\n{END}{tail}"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--check", action="store_true", help="only report whether README.md is up to date")
    args = parser.parse_args(argv)
    if not args.readme.is_file():
        raise SystemExit(f"error: {args.readme}: file not found")
    current = args.readme.read_text()
    updated = render(current, results_markdown(args.results))
    if args.check:
        print(f"{args.readme}: {'up to date' if updated == current else 'out of date; run benchmarks/render_readme.py'}")
        return 0 if updated == current else 1
    if updated != current:
        args.readme.write_text(updated)
    print(f"{args.readme}: results section {'rewritten' if updated != current else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
