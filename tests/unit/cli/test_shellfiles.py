"""`vmrepair completion` and `vmrepair manpage`: generated from the parser, usable without a config."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from orchestrator.cli import helptext, shellfiles
from orchestrator.cli.main import build_parser, main


def _commands() -> list[str]:
    return [path for path, _, _ in helptext.command_parsers(build_parser())]


def _roff_text(page: str) -> str:
    """The page's words with roff escapes undone, as a reader (or a grep) sees them."""
    return page.replace("\\-", "-").replace("\\fB", "").replace("\\fR", "").replace("\\fI", "") \
        .replace("\\/", "").replace("\\,", "").replace("\\e", "\\")


def test_man_page_names_every_command() -> None:
    page = _roff_text(shellfiles.man_page(build_parser()))
    assert page.startswith(".TH VMREPAIR 1 ") or page.startswith('.TH VMREPAIR "1" ')
    for path in _commands():
        assert f"vmrepair {path}" in page, path


def test_man_page_has_examples_and_exit_status_sections() -> None:
    page = shellfiles.man_page(build_parser())
    assert ".SH EXAMPLES" in page
    assert ".SH EXIT STATUS" in page
    text = _roff_text(page)
    assert "vmrepair detect --target local" in text
    for code, meaning in helptext.ERROR_EXIT_CODES:
        assert f".B {code}\n{meaning}" in text


def test_man_page_escapes_lines_roff_would_read_as_requests() -> None:
    assert shellfiles._escape(".SH x\n'y\nz-1 \\n") == "\\&.SH x\n\\&'y\nz\\-1 \\en"


@pytest.mark.skipif(shutil.which("groff") is None, reason="groff is not installed")
def test_man_page_renders_without_roff_errors(tmp_path: Path) -> None:
    page = tmp_path / "vmrepair.1"
    page.write_text(shellfiles.man_page(build_parser()))
    # -Wbreak: a long option list that cannot be justified is a typesetting note, not a fault.
    done = subprocess.run(["groff", "-man", "-Tutf8", "-wmac", "-Wbreak", str(page)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0
    assert done.stderr == ""
    assert "vmrepair image build" in done.stdout


@pytest.mark.parametrize("shell", shellfiles.SHELLS)
def test_completion_offers_every_top_level_command(shell: str) -> None:
    script = shellfiles.completion_script(build_parser(), shell)
    for path in _commands():
        assert path.split()[-1] in script, path


def test_bash_completion_completes_a_nested_command_and_files() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    script = shellfiles.completion_script(build_parser(), "bash")
    probe = (script + '\nCOMP_WORDS=(vmrepair vm ex); COMP_CWORD=2; COMP_LINE="vmrepair vm ex"; '
             'COMP_POINT=${#COMP_LINE}; _shtab_vmrepair vmrepair ex vm; echo "${COMPREPLY[@]}"\n')
    done = subprocess.run([bash, "--norc", "-c", probe], capture_output=True, text=True, check=False)
    assert done.stdout.split() == ["exec"], done.stderr
    # `log verify [file]` is typed Path: completed as a file name.
    assert "_shtab_vmrepair_log_verify_pos_0_COMPGEN=_shtab_compgen_files" in script


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
def test_zsh_completion_is_valid_zsh(tmp_path: Path) -> None:
    script = tmp_path / "_vmrepair"
    script.write_text(shellfiles.completion_script(build_parser(), "zsh"))
    done = subprocess.run(["zsh", "-n", str(script)], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


def test_completion_command_prints_the_script_without_any_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # A config that would refuse every command that loads it: completion must not load it.
    monkeypatch.setenv("VMREPAIR_CONFIG", str(tmp_path / "missing.yaml"))
    assert main(["completion", "bash"]) == 0
    out = capsys.readouterr().out
    assert "complete -o bashdefault -F _shtab_vmrepair vmrepair" in out
    assert main(["manpage"]) == 0
    assert capsys.readouterr().out.startswith(".TH VMREPAIR")


def test_completion_without_a_shell_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion"]) == 2
    assert "completion needs a shell (bash or zsh) or --install PREFIX" in capsys.readouterr().err


def test_install_writes_the_three_files_readable_by_all(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "--install", str(tmp_path / "usr")]) == 0
    err = capsys.readouterr().err
    for relative in shellfiles.INSTALL_PATHS.values():
        path = tmp_path / "usr" / relative
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        assert f"wrote {path}\n" in err
    assert (tmp_path / "usr/share/man/man1/vmrepair.1").read_text().startswith(".TH VMREPAIR")
    assert "_shtab_vmrepair" in (tmp_path / "usr/share/bash-completion/completions/vmrepair").read_text()
    assert (tmp_path / "usr/share/zsh/site-functions/_vmrepair").read_text().startswith("#compdef vmrepair")


def test_install_into_an_unwritable_place_names_it(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["completion", "--install", str(blocker)]) == 6
    err = capsys.readouterr().err
    assert f"error: cannot create {blocker}/share/bash-completion/completions" in " ".join(err.split())
    assert "give --install a prefix you can write" in " ".join(err.split())
