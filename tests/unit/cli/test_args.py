"""Numeric options are checked when parsed, naming the option (issue 13, item 9): a NaN stability
period once passed argparse and failed mid-pipeline, after the troubleshooting VM had booted."""

from __future__ import annotations

import pytest

from orchestrator.cli.main import build_parser

OPTIONS = [
    (["run", "--target", "local", "--stable-period"], "--stable-period", "between 0 and 3600"),
    (["run", "--target", "local", "--reboot-notice"], "--reboot-notice", "between 0 and 604800"),
    (["demo", "--stable-period"], "--stable-period", "between 0 and 3600"),
    (["vm", "up", "x", "--boot-timeout"], "--boot-timeout", "more than 0 and at most 3600"),
    (["vm", "exec", "--timeout"], "--timeout", "more than 0 and at most 86400"),  # before NAME -- CMD
]


@pytest.mark.parametrize(("argv", "option", "bounds"), OPTIONS)
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "-1", "abc", "", "3601e9"])
def test_bad_seconds_are_refused_naming_the_option(argv: list[str], option: str, bounds: str, value: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # OPTION=VALUE: argparse takes a separate "-inf" for an option of its own.
    argv = [*argv[:-1], f"{option}={value}", *(["x", "--", "true"] if option == "--timeout" else [])]
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: {value!r} is not a number of seconds {bounds}" in err


@pytest.mark.parametrize(("argv", "option", "bounds"), OPTIONS)
def test_good_seconds_are_floats(argv: list[str], option: str, bounds: str) -> None:
    tail = ["2.5", "x", "--", "true"] if option == "--timeout" else ["2.5"]
    args = build_parser().parse_args([*argv, *tail])
    assert getattr(args, option.lstrip("-").replace("-", "_")) == 2.5


def test_zero_is_a_valid_stable_period_and_notice() -> None:
    args = build_parser().parse_args(["run", "--target", "local", "--stable-period", "0",
                                      "--reboot-notice", "0"])
    assert (args.stable_period, args.reboot_notice) == (0.0, 0.0)
