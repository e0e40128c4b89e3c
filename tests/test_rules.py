"""Rules files: the shipped ones load; each broken variant names file and key.

Broken variants are made from the text of rules/demo.toml (one edit each),
written to tmp_path and loaded with config.load().
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.config import rules as config
from bot.config.rules import ConfigError

RULES = Path(__file__).resolve().parent.parent / "rules"
DEMO = (RULES / "demo.toml").read_text(encoding="utf-8")

IMAP_SOURCE = """[source]
kind = "imap"
host = "imap.example.org"
user = "bpbot"
password_file = "imap-password"
idle_timeout = "25m"
"""


def edit(old: str, new: str, count: int = 1) -> str:
    """demo.toml with ``old`` replaced; fails loudly if demo.toml changed under us."""
    assert DEMO.count(old) >= count, f"demo.toml no longer contains {old!r}"
    return DEMO.replace(old, new, count)


def kernel(name: str) -> str:
    """'kernels[i]' for the demo kernel called ``name`` (its place in the file)."""
    names = re.findall(r'^name = "([^"]+)"', DEMO.partition("[[kernels]]")[2], re.M)
    return f"kernels[{names.index(name)}]"


def without_kernels() -> str:
    head, _, tail = DEMO.partition("[[kernels]]")
    return head + "[series]" + tail.partition("[series]")[2]


def source(table: str) -> str:
    head, _, tail = DEMO.partition("[source]")
    return head + table + "\n[smtp]" + tail.partition("[smtp]")[2]


def bug(reason: str):
    return pytest.mark.xfail(reason=f"bug: {reason}", strict=True)


@pytest.mark.parametrize("name", ["demo.toml", "backports.toml"])
def test_shipped_rules_load(name: str, tmp_path: Path):
    rules = config.load(RULES / name, base_dir=tmp_path)
    assert rules.bot_address and "@" in rules.bot_address
    assert rules.kernels == sorted(rules.kernels, key=lambda k: k.version_tuple)
    assert rules.build_commands and all(isinstance(a, str) for c in rules.build_commands
                                        for a in c)
    assert rules.list_address == "backports@vger.kernel.org"


def test_demo_values_and_relative_paths(tmp_path: Path):
    rules = config.load(RULES / "demo.toml", base_dir=tmp_path)
    assert rules.bot_address == rules.loop_id == "bpbot@backports.example.org"
    assert rules.source.kind == "maildir" and rules.source.path == tmp_path / "list"
    assert rules.state_dir == tmp_path / "state"
    names = [k.name for k in rules.kernels]
    assert {"3.10", "4.19", "6.1"} <= set(names) and len(names) == DEMO.count("[[kernels]]")
    assert rules.kernel("6.1").path == tmp_path / "kernels/6.1"
    assert (rules.grace_seconds, rules.generate_timeout, rules.build_jobs) == (3, 120, 2)


def test_backports_rules_values():
    rules = config.load(RULES / "backports.toml")
    assert rules.source.kind == "imap" and rules.source.idle_seconds == 25 * 60
    assert rules.smtp.password_file == Path("/etc/bpbot/smtp-password")
    assert len(rules.build_commands) == 3  # a list of argument lists, run in order
    assert rules.grace_seconds == 30 * 60


BROKEN = [
    # (id, rules text, key named in the error, words of the problem)
    ("missing-bot-address", edit('address = "bpbot@backports.example.org"\n', ""),
     "bot.address", "is required"),
    ("bot-address-no-at", edit('address = "bpbot@backports.example.org"', 'address = "bpbot"'),
     "bot.address", "mail address"),
    ("build-jobs-zero", edit("jobs = 2", "jobs = 0"), "build.jobs", "positive"),
    ("build-jobs-string", edit("jobs = 2", 'jobs = "2"'), "build.jobs", "must be int"),
    ("build-jobs-bool", edit("jobs = 2", "jobs = true"), "build.jobs", "must be int"),
    ("build-command-shell-string", edit(
        'command = ["make", "-s", "-C", "{output}", "KLIB_BUILD={kernel_path}", '
        '"O={build_dir}"]', 'command = "make all"'), "build.command", "must be list"),
    ("build-command-empty", edit(
        'command = ["make", "-s", "-C", "{output}", "KLIB_BUILD={kernel_path}", '
        '"O={build_dir}"]', "command = []"), "build.command", "argument list"),
    ("build-command-mixed", edit(
        'command = ["make", "-s", "-C", "{output}", "KLIB_BUILD={kernel_path}", '
        '"O={build_dir}"]', 'command = [["make"], "all"]'), "build.command", "argument list"),
    ("build-command-number", edit('"-s", "-C"', '"-s", 4, "-C"'), "build.command",
     "argument list"),
    ("unknown-placeholder", edit("KLIB_BUILD={kernel_path}", "KLIB_BUILD={kernl_path}"),
     "build.command", "unknown placeholder {kernl_path}"),
    ("generate-unknown-placeholder", edit("{tree}/gentree.py", "{src}/gentree.py"),
     "generate.command", "unknown placeholder {src}"),
    ("unknown-key", edit("jobs = 2", "jobz = 2"), "build.jobz", "unknown key"),
    ("unknown-table", DEMO + "\n[extra]\nfoo = 1\n", "extra", "unknown key"),
    ("build-sandbox", edit('sandbox = "bwrap"', 'sandbox = "docker"'), "build.sandbox",
     "bwrap"),
    ("build-executor", edit('executor = "local"', 'executor = "docker"'), "build.executor",
     '"local" or "rq"'),
    ("rq-without-url", edit('executor = "local"', 'executor = "rq"'), "rq.url",
     "is required when build.executor"),
    ("build-timeout-negative", edit('timeout = "2m"\n# Bytes', "timeout = -5\n# Bytes"),
     "build.timeout", "negative"),
    ("source-kind-pop3", edit('kind = "maildir"', 'kind = "pop3"'), "source.kind",
     "one of imap, maildir, mbox"),
    ("source-missing", source(""), "source", "is required"),
    ("imap-idle-over-29m", source(IMAP_SOURCE.replace('"25m"', '"45m"')),
     "source.idle_timeout", "at most 29m"),
    ("imap-missing-host", source(IMAP_SOURCE.replace('host = "imap.example.org"\n', "")),
     "source.host", "is required"),
    ("imap-inline-password", source(IMAP_SOURCE + 'password = "hunter2"\n'),
     "source.password", "unknown key"),
    ("kernels-missing", without_kernels(), "kernels", "is required"),
    ("kernels-empty", "kernels = []\n" + without_kernels(), "kernels", "at least one"),
    ("kernel-duplicate-name", edit('name = "4.19"', 'name = "3.10"'), f"{kernel('4.19')}.name",
     "duplicate kernel name '3.10'"),
    ("kernel-bad-version", edit('version = "5.10.237"', 'version = "five.ten"'),
     f"{kernel('5.10')}.version", "must look like 6.1"),
    ("kernel-missing-path", edit('path = "kernels/6.1"\n', ""), f"{kernel('6.1')}.path",
     "is required"),
    ("kernel-unknown-key", edit('path = "kernels/4.19"', 'path = "kernels/4.19"\narch = "x86"'),
     f"{kernel('4.19')}.arch", "unknown key"),
    ("grace-period-soon", edit('grace_period = "3s"', 'grace_period = "soon"'),
     "series.grace_period", "'soon'"),
    ("window-days-zero", edit("window_days = 30", "window_days = 0"), "series.window_days",
     "positive"),
    ("smtp-user-without-password-file", edit("port = 8025", 'port = 8025\nuser = "bpbot"'),
     "smtp.password_file", "is required when user is set"),
    ("smtp-port-string", edit("port = 8025", 'port = "8025"'), "smtp.port", "must be int"),
    ("reply-cc-list-without-address", edit(
        'list_address = "backports@vger.kernel.org"\n', ""), "reply.list_address",
     "cc_list"),
    ("tag-branch-not-string", edit('"main" = "main"', '"main" = 1'), "tree.tag_branches.main",
     "must be str"),
    ("tree-missing-path", edit('path = "tree"\n', ""), "tree.path", "is required"),
    ("limits-zero", edit("max_patches = 100", "max_patches = 0"), "limits.max_patches",
     "positive"),
    ("toml-syntax-error", edit("jobs = 2", "jobs = = 2"), "(syntax)", "line"),
    ("toml-duplicate-key", edit("jobs = 2", "jobs = 2\njobs = 3"), "(syntax)", "Cannot overwrite"),
]


@pytest.mark.parametrize(("text", "key", "problem"), [row[1:] for row in BROKEN],
                         ids=[row[0] for row in BROKEN])
def test_broken_rules_name_file_and_key(tmp_path: Path, text: str, key: str, problem: str):
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.load(path, base_dir=tmp_path)
    err = info.value
    assert (err.file, err.key) == (str(path), key)
    assert problem in err.problem
    # the message a person reads names the file and the exact key
    assert re.search(rf"{re.escape(str(path))}: {re.escape(key)}: ", str(err))


def test_missing_file_names_the_file(tmp_path: Path):
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert (info.value.file, info.value.key) == (str(path), "(file)")
    assert str(path) in str(info.value) and "cannot read" in str(info.value)


def test_parse_names_the_given_file(tmp_path: Path):
    import tomllib

    data = tomllib.loads(edit("jobs = 2", "jobs = 0"))
    with pytest.raises(ConfigError, match=r"^embedded demo: build\.jobs: must be positive"):
        config.parse(data, "embedded demo", tmp_path)


DURATIONS = [("90", 90), ('"90s"', 90), ('"10m"', 600), ('"2h"', 7200), ('"3d"', 259200),
             ('" 5 m "', 300), ("0", 0)]


@pytest.mark.parametrize(("value", "seconds"), DURATIONS)
def test_durations(tmp_path: Path, value: str, seconds: int):
    path = tmp_path / "rules.toml"
    path.write_text(edit('grace_period = "3s"', f"grace_period = {value}"), encoding="utf-8")
    assert config.load(path, base_dir=tmp_path).grace_seconds == seconds


BUGS = [
    pytest.param(edit('grace_period = "3s"', "grace_period = true"), "series.grace_period",
                 id="duration-bool"),
    pytest.param(edit('timeout = "2m"\n# Bytes', "timeout = false\n# Bytes"), "build.timeout",
                 id="build-timeout-false"),
    pytest.param(edit('build_file_size = "1G"', "build_file_size = true"),
                 "limits.build_file_size", id="size-bool"),
]


@pytest.mark.parametrize(("text", "key"), BUGS)
def test_rules_that_should_not_load(tmp_path: Path, text: str, key: str):
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.load(path, base_dir=tmp_path)
    assert info.value.key == key


def test_non_utf8_file_is_a_config_error(tmp_path: Path):
    path = tmp_path / "latin1.toml"
    path.write_bytes("# maintained by J\u00fcrgen\n".encode("latin-1") + DEMO.encode())
    with pytest.raises(ConfigError) as info:
        config.load(path, base_dir=tmp_path)
    assert info.value.file == str(path)


def test_every_problem_of_a_file_is_reported_at_once(tmp_path: Path):
    text = edit("jobs = 2", "jobs = 0")
    text = text.replace("port = 8025", 'port = "8025"').replace("window_days = 30", "window_dayz = 30")
    text = text.replace('version = "5.10.237"', 'version = "five.ten"')
    path = tmp_path / "broken.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        config.load(path, base_dir=tmp_path)
    keys = [p.key for p in info.value.problems]
    assert keys == ["smtp.port", "build.jobs", f"{kernel('5.10')}.version", "series.window_dayz"]
    # the first one is also the error's own key; each reads as one line
    assert (info.value.key, info.value.problem) == ("smtp.port", "must be int, not str '8025'")
    assert str(info.value).splitlines()[1] == f"{path}: build.jobs: must be positive, not 0"


def test_the_cli_prints_every_problem(tmp_path: Path, capsys):
    from bot import cli

    path = tmp_path / "broken.toml"
    path.write_text(edit("jobs = 2", "jobs = 0").replace("max_patches = 100", "max_patches = -1"),
                    encoding="utf-8")
    mail = RULES.parent / "tests" / "data" / "corpus" / "discussion.eml"
    assert cli.main(["check", "--rules", str(path), str(mail)]) != 0
    err = capsys.readouterr().err.splitlines()
    assert f"bpbot: configuration error: {path}: build.jobs: must be positive, not 0" in err
    assert f"bpbot: configuration error: {path}: limits.max_patches: must be positive, not -1" in err


def test_strict_tags(tmp_path: Path):
    assert config.load(RULES / "demo.toml", base_dir=tmp_path).strict_tags is False
    path = tmp_path / "rules.toml"
    path.write_text(edit("strict_tags = false", "strict_tags = true"), encoding="utf-8")
    assert config.load(path, base_dir=tmp_path).strict_tags is True
    path.write_text(edit("strict_tags = false", 'strict_tags = "yes"'), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"tree\.strict_tags: must be bool, not str 'yes'"):
        config.load(path, base_dir=tmp_path)


def test_limits_defaults_are_the_sandbox_defaults(tmp_path: Path):
    from bot.sandbox import limits

    head, _, tail = DEMO.partition("\n[limits]\n")
    path = tmp_path / "rules.toml"
    path.write_text(head + "\n[commands]\n" + tail.partition("\n[commands]\n")[2], encoding="utf-8")
    rules = config.load(path, base_dir=tmp_path)
    assert limits.from_rules(rules) == limits.Limits()
    assert (rules.max_diff_bytes, rules.run_disk) == (5 * 1024 ** 2, 8 * 1024 ** 3)


def test_every_shipped_example_names_only_known_keys(tmp_path: Path):
    """deploy/config.example.toml and rules/*.toml against the schema (unknown keys refused)."""
    import tomllib

    from bot.config import schema

    examples = [*RULES.glob("*.toml"), RULES.parent / "deploy" / "config.example.toml"]
    for path in examples:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for table in data.get("kernels", []):
            table["path"] = str(tmp_path)  # headers need not be installed here
            table["version"] = "6.1"
        assert schema.validate(data, str(path), tmp_path).tree.strict_tags is False


@pytest.mark.parametrize("line, value, words", [
    ('build_address_space = "4G"', '"999999999999G"', "limits.build_address_space: is too large"),
    ('build_cpu_time = "30m"', '"99999999999999999999999d"', "limits.build_cpu_time: is too large"),
])
def test_limits_too_large_for_prlimit_are_refused_at_load(tmp_path, line, value, words):
    """A limit prlimit cannot take would fail every run later, blaming the series."""
    text = config.DEMO_RULES.read_text()
    assert line in text
    path = tmp_path / "rules.toml"
    path.write_text(text.replace(line, f"{line.split(' = ')[0]} = {value}", 1))
    with pytest.raises(ConfigError, match=words):
        config.load(path, base_dir=config.DEMO_RULES.parent)
