"""benchmarks/render_readme.py writes the measured results into README.md between the markers, and nothing else."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("render_readme", Path(__file__).parent.parent / "benchmarks" / "render_readme.py")
render_readme = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render_readme)

README = "# nextbest\n\nintro\n\n<!-- results:begin -->\nold numbers\n<!-- results:end -->\n\n## Licence\nApache\n"


@pytest.fixture
def project(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "b_peers.json").write_text(json.dumps({"readme": "| peers | 2 |", "results": []}))
    (results / "a_ope.json").write_text(json.dumps({"readme": "| ope | 1 |"}))
    (results / "c_other.json").write_text(json.dumps({"numbers": [1, 2]}))  # no readme: skipped
    (tmp_path / "README.md").write_text(README)
    return tmp_path


def test_results_go_between_the_markers_in_file_order(project):
    args = ["--readme", str(project / "README.md"), "--results", str(project / "results")]
    assert render_readme.main(args) == 0
    text = (project / "README.md").read_text()
    before, inside = text.split("<!-- results:begin -->")
    inside, after = inside.split("<!-- results:end -->")
    assert before == "# nextbest\n\nintro\n\n" and after == "\n\n## Licence\nApache\n"
    assert "old numbers" not in inside
    assert inside.index("| ope | 1 |") < inside.index("| peers | 2 |")
    assert "<!-- from results/a_ope.json -->" in inside and "numbers" not in inside
    assert render_readme.main([*args, "--check"]) == 0
    (project / "results" / "a_ope.json").write_text(json.dumps({"readme": "| ope | 3 |"}))
    assert render_readme.main([*args, "--check"]) == 1
    assert "| ope | 1 |" in (project / "README.md").read_text()  # --check writes nothing


@pytest.mark.parametrize("readme", ["# no markers\n", "<!-- results:end -->\n<!-- results:begin -->\n"])
def test_a_readme_without_the_markers_is_refused(project, readme):
    (project / "README.md").write_text(readme)
    with pytest.raises(SystemExit, match="needs exactly one <!-- results:begin --> followed by one"):
        render_readme.main(["--readme", str(project / "README.md"), "--results", str(project / "results")])
    assert (project / "README.md").read_text() == readme


def test_known_results_come_in_the_readme_order_with_a_heading(tmp_path):
    (tmp_path / "budget.json").write_text(json.dumps({"readme": "| fit | 9.5 s |"}))
    (tmp_path / "personalization.json").write_text(json.dumps({"readme": "### Personalization\n\n| agent |"}))
    (tmp_path / "zz_new.json").write_text(json.dumps({"readme": "| new |"}))
    text = render_readme.results_markdown(tmp_path)
    order = [text.index(s) for s in ("### Personalization", render_readme.ORDER["budget"], "| fit | 9.5 s |", "| new |")]
    assert order == sorted(order)
