"""Nothing imports Ray without --ray: `nextbest --help` and the commands run without it."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from nextbest.cli import main
for argv in {argvs!r}:  # several commands in one process: one import of nextbest
    sys.argv = argv
    try:
        main()
    except SystemExit as exit_:
        assert not exit_.code, (argv, exit_.code)
loaded = sorted(m for m in sys.modules if m == "ray" or m.startswith(("ray.", "nextbest.scale")))
assert not loaded, loaded
print("no ray")
"""


def run_without_ray(*commands: tuple[str, ...], cwd) -> str:
    argvs = [["nextbest", *argv] for argv in commands]
    done = subprocess.run([sys.executable, "-c", CHECK.format(argvs=argvs)], capture_output=True, text=True, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_help_and_commands_without_ray_never_import_it(tmp_path):
    assert "no ray" in run_without_ray(
        ("--help",), ("predict", "--help"), ("serve", "--help"),
        ("simulate", "--scenario", "optimus-poc", "--agent", "linucb", "--examples", "200", "--batch-size", "100",
         "--seeds", "0-1", "--quiet"), cwd=tmp_path)


def test_a_bare_ray_flag_means_a_local_ray_and_an_address_is_kept():
    from nextbest.cli.app import ray_address_argv

    assert ray_address_argv(["predict", "DIR", "--ray"]) == ["predict", "DIR", "--ray", "local"]
    assert ray_address_argv(["serve", "--ray", "DIR"]) == ["serve", "--ray", "local", "DIR"]
    assert ray_address_argv(["predict", "--ray", "--seed", "3"]) == ["predict", "--ray", "local", "--seed", "3"]
    for address in ("auto", "ray://head:10001", "127.0.0.1:6379", "local"):
        assert ray_address_argv(["tune", "--ray", address]) == ["tune", "--ray", address]
