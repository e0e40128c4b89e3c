"""Rules: declarative TOML, validated at load.

Every error names the file, the key and what is wrong, and nothing starts.
Relative paths are resolved against ``base_dir`` (the rules file's folder,
or the demo's working dir for the embedded default).
"""

from __future__ import annotations

import logging
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config.kernels import Kernel, _kernels  # noqa: F401 (Kernel re-exported)
from bot.config.table import PLACEHOLDERS, ConfigError, _count, _path, _size, _Table  # noqa: F401 (re-exported)

# The example rules, shipped inside the package (bot/rules/ links to the
# top-level rules/ in a checkout; a wheel carries copies).
RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
DEMO_RULES = RULES_DIR / "demo.toml"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    kind: str  # imap | maildir | mbox
    path: Path | None = None
    host: str = ""
    port: int = 993
    ssl: bool = True
    user: str = ""
    password_file: Path | None = None
    folder: str = "INBOX"
    idle_seconds: int = 25 * 60
    poll_seconds: int = 300


@dataclass(frozen=True)
class Smtp:
    host: str = "127.0.0.1"
    port: int = 25
    user: str = ""
    password_file: Path | None = None
    starttls: bool = False
    timeout: int = 60


@dataclass(frozen=True)
class CommandRules:
    """[commands]: mail commands and subscriptions (bot/commands/parse.py)."""

    max_lines: int = 5
    maintainers: tuple[str, ...] = ()
    per_sender_per_hour: int = 10
    overall_per_hour: int = 60
    token_days: int = 3
    subaddress: bool = False
    require_dkim: bool = False
    # Mailing lists (fnmatch, lower case): never answered, never subscribed (bot/ingest/lists.py).
    list_addresses: tuple[str, ...] = ("*@vger.kernel.org", "*@lists.*")


@dataclass(frozen=True)
class Rules:
    file: str
    base_dir: Path
    bot_address: str
    bot_name: str
    loop_id: str
    state_dir: Path
    web_url: str
    source: Source
    smtp: Smtp
    reply_to_author: bool
    reply_cc_list: bool
    list_address: str
    tree_path: Path
    tree_url: str
    tree_branch: str
    tag_branches: dict[str, str]
    upstream: Path | None
    generate_commands: list[list[str]]
    generate_timeout: int
    build_commands: list[list[str]]
    build_jobs: int
    build_timeout: int
    output_cap: int
    sandbox: str
    kernels: list[Kernel]
    subset_full: bool  # deprecated: every kernel is built; kept so old rules still load
    subset_paths: list[tuple[str, str]]
    ccache: bool
    executor: str
    rq_url: str
    rq_queue: str
    rq_result_ttl: int
    grace_seconds: int
    window_days: int
    max_message_bytes: int
    max_patches: int
    # [limits] for untrusted code (bot/sandbox/limits.py); 0 means no limit.
    max_diff_bytes: int = 5 * 1024 * 1024
    build_address_space: int = 4 * 1024 ** 3
    build_cpu_seconds: int = 1800
    build_file_size: int = 1024 ** 3
    build_pids: int = 512
    build_open_files: int = 1024
    build_tmp_size: int = 1024 ** 3
    # What one run may write (out/ and build dirs); also the free space it needs.
    run_disk: int = 8 * 1024 ** 3
    extra: dict[str, Any] = field(default_factory=dict)
    commands: CommandRules = field(default_factory=CommandRules)
    # [web] listen = "host:port": `bpbot serve` also serves the status page (bot/web/page.py).
    web_listen: tuple[str, int] | None = None
    # [series] answer_pull_requests: a one-line "pull requests are not tested" reply.
    answer_pull_requests: bool = False
    # [subset] max_kernels: build at most this many kernels per series (0: all);
    # the verdict of a cut run is partial, naming the kernels not built.
    subset_max_kernels: int = 0
    # [tree] strict_tags: a patch whose subject tag is not in tag_branches is
    # recorded as not for this tree and not tested (bot/ingest/tags.py).
    strict_tags: bool = False

    def kernel(self, name: str) -> Kernel:
        return next(k for k in self.kernels if k.name == name)


def load(path: str | Path, base_dir: str | Path | None = None) -> Rules:
    """Load and validate a rules file; raise ConfigError naming the bad key."""
    path = Path(path)
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "(file)", f"is not UTF-8 text: {exc.reason} at byte "
                                          f"{exc.start}") from exc
    except OSError as exc:
        raise ConfigError(file, "(file)", f"cannot read: {exc.strerror or exc}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(file, "(syntax)", str(exc)) from exc
    base = Path(base_dir) if base_dir is not None else path.resolve().parent
    return parse(data, file, base)


def parse(data: dict, file: str, base: Path) -> Rules:
    top = _Table(file, "", data)
    bot = top.table("bot", required=True)
    address = bot.get("address", str)
    if "@" not in address:
        raise bot.fail("address", f"must be a mail address, not {address!r}")
    rules_kw: dict[str, Any] = dict(
        bot_address=address.lower(),
        bot_name=bot.get("name", str, "bpbot"),
        loop_id=bot.get("loop_id", str, address.lower()),
        state_dir=_path(base, bot.get("state_dir", str, "state")),
        web_url=bot.get("web_url", str, ""),
    )
    bot.done()
    rules_kw["source"] = _source(top.table("source", required=True), base)
    rules_kw["smtp"] = _smtp(top.table("smtp"), base)

    reply = top.table("reply")
    rules_kw.update(
        reply_to_author=reply.get("to_author", bool, True),
        reply_cc_list=reply.get("cc_list", bool, True),
        list_address=reply.get("list_address", str, ""),
    )
    if rules_kw["reply_cc_list"] and not rules_kw["list_address"]:
        raise reply.fail("list_address", "is required when cc_list = true")
    reply.done()

    tree = top.table("tree", required=True)
    tree_path = tree.get("path", str)
    tags = tree.table("tag_branches")
    tag_branches = {k: tags.get(k, str) for k in list(tags.data)}
    rules_kw.update(
        tree_path=_path(base, tree_path),
        tree_url=tree.get("url", str, ""),
        tree_branch=tree.get("branch", str, "main"),
        tag_branches=tag_branches,
        upstream=_path(base, tree.get("upstream", str, "")),
        strict_tags=tree.get("strict_tags", bool, False),
    )
    tree.done()

    gen = top.table("generate", required=True)
    rules_kw.update(generate_commands=gen.commands("command"),
                    generate_timeout=gen.duration("timeout", 600))
    gen.done()

    build = top.table("build", required=True)
    rules_kw.update(
        build_commands=build.commands("command"),
        build_jobs=build.positive("jobs", 2),
        build_timeout=build.duration("timeout", 1800),
        output_cap=build.positive("output_cap", 4 * 1024 * 1024),
        sandbox=build.get("sandbox", str, "bwrap"),
        ccache=build.get("ccache", bool, True),
        executor=build.get("executor", str, "local"),
    )
    if rules_kw["executor"] not in ("local", "rq"):
        raise build.fail("executor", f"must be \"local\" or \"rq\", not {rules_kw['executor']!r}")
    if rules_kw["sandbox"] not in ("bwrap", "none"):
        raise build.fail("sandbox", f"must be \"bwrap\" or \"none\", not {rules_kw['sandbox']!r}")
    build.done()

    rules_kw["kernels"] = _kernels(top, file, base)
    rules_kw.update(_subset(top.table("subset")))
    rq = top.table("rq")
    rules_kw.update(rq_url=rq.get("url", str, ""), rq_queue=rq.get("queue", str, "bpbot-builds"),
                    rq_result_ttl=rq.duration("result_ttl", "1d"))
    if rules_kw["executor"] == "rq" and not rules_kw["rq_url"]:
        raise rq.fail("url", "is required when build.executor = \"rq\" (e.g. redis://host:6379/0)")
    rq.done()

    series = top.table("series")
    rules_kw.update(
        grace_seconds=series.duration("grace_period", "30m"),
        window_days=series.positive("window_days", 30),
        answer_pull_requests=series.get("answer_pull_requests", bool, False),
    )
    series.done()
    limits = top.table("limits")
    rules_kw.update(
        max_message_bytes=limits.positive("max_message_bytes", 10 * 1024 * 1024),
        max_patches=limits.positive("max_patches", 100),
        max_diff_bytes=_size(limits, "max_diff_bytes", 5 * 1024 * 1024, zero=False),
        build_address_space=_size(limits, "build_address_space", 4 * 1024 ** 3),
        build_cpu_seconds=limits.duration("build_cpu_time", "30m"),
        build_file_size=_size(limits, "build_file_size", 1024 ** 3),
        build_pids=_count(limits, "build_pids", 512),
        build_open_files=_count(limits, "build_open_files", 1024),
        build_tmp_size=_size(limits, "build_tmp_size", 1024 ** 3),
        run_disk=_size(limits, "run_disk", 8 * 1024 ** 3),
    )
    limits.done()
    rules_kw["commands"] = _commands(top.table("commands"))
    rules_kw["web_listen"] = _web(top.table("web"))
    top.done()
    return Rules(file=file, base_dir=base, **rules_kw)


def _source(src: _Table, base: Path) -> Source:
    kind = src.get("kind", str)
    if kind == "imap":
        ssl = src.get("ssl", bool, True)
        out = Source(
            kind=kind,
            host=src.get("host", str),
            port=src.positive("port", 993 if ssl else 143),
            ssl=ssl,
            user=src.get("user", str),
            password_file=_path(base, src.get("password_file", str)),
            folder=src.get("folder", str, "INBOX"),
            idle_seconds=src.duration("idle_timeout", "25m"),
            poll_seconds=src.duration("poll_interval", "5m"),
        )
        if out.idle_seconds > 29 * 60:
            raise src.fail("idle_timeout",
                           "must be at most 29m (RFC 2177: servers drop IDLE after 30 minutes)")
    elif kind in ("maildir", "mbox"):
        out = Source(kind=kind, path=_path(base, src.get("path", str)),
                     poll_seconds=src.duration("poll_interval", "1m"))
    else:
        raise src.fail("kind", f"must be one of imap, maildir, mbox, not {kind!r}")
    src.done()
    return out


def _commands(table: _Table) -> CommandRules:
    """The optional [commands] table (mail commands, see bot/commands/parse.py)."""
    maintainers = table.get("maintainers", list, [])
    for i, addr in enumerate(maintainers):
        if not isinstance(addr, str) or "@" not in addr:
            raise table.fail("maintainers", f"entry {i} must be a mail address, not {addr!r}")
    out = CommandRules(
        max_lines=table.positive("max_lines", 5),
        maintainers=tuple(a.strip().lower() for a in maintainers),
        per_sender_per_hour=table.positive("per_sender_per_hour", 10),
        overall_per_hour=table.positive("overall_per_hour", 60),
        token_days=table.positive("token_days", 3),
        subaddress=table.get("subaddress", bool, False),
        require_dkim=table.get("require_dkim", bool, False),
        list_addresses=_patterns(table, "list_addresses", CommandRules.list_addresses),
    )
    table.done()
    return out


def _patterns(table: _Table, key: str, default: tuple[str, ...]) -> tuple[str, ...]:
    values = table.get(key, list, list(default))
    for i, value in enumerate(values):
        if not isinstance(value, str) or "@" not in value:
            raise table.fail(key, f"entry {i} must be an address pattern like "
                                  f"\"*@lists.example.org\", not {value!r}")
    return tuple(v.strip().lower() for v in values)


def _web(table: _Table) -> tuple[str, int] | None:
    """The optional [web] table: listen = "127.0.0.1:8080" (or "[::1]:8080")."""
    listen = table.get("listen", str, "")
    table.done()
    if not listen:
        return None
    try:
        return parse_listen(listen)
    except ValueError as exc:
        raise table.fail("listen", str(exc)) from None


def parse_listen(listen: str) -> tuple[str, int]:
    """'host:port' -> (host, port); ValueError saying what is wrong."""
    match = re.match(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[^\s:\[\]]+)):(?P<port>\d+)$", listen)
    port = int(match.group("port")) if match else 0
    if not match or not 0 < port < 65536:
        raise ValueError(f"must be \"host:port\" like \"127.0.0.1:8080\" (port 1-65535), "
                         f"not {listen!r}")
    return match.group("v6") or match.group("host"), port


def _smtp(smtp: _Table, base: Path) -> Smtp:
    out = Smtp(
        host=smtp.get("host", str, "127.0.0.1"),
        port=smtp.positive("port", 25),
        user=smtp.get("user", str, ""),
        password_file=_path(base, smtp.get("password_file", str, "")),
        starttls=smtp.get("starttls", bool, False),
        timeout=smtp.duration("timeout", 60),
    )
    if out.user and out.password_file is None:
        raise smtp.fail("password_file", "is required when user is set (passwords never inline)")
    smtp.done()
    return out


# Path rules when the rules give none: glob -> policy (see bot/testrun/subset.py).
DEFAULT_SUBSET_PATHS = [
    ("devel/**", "none"), ("*.md", "none"), ("README*", "none"),
    ("dependencies", "versions"),
    ("patches/**", "edges"), ("*.cocci", "edges"), ("gentree.py", "edges"),
    ("copy-list", "edges"), ("lib/**", "edges"),
]
SUBSET_POLICIES = ("none", "guards", "versions", "edges")


def _subset(table: _Table) -> dict[str, Any]:
    full = table.get("full", bool, False)
    if "full" in table.data:
        log.warning("%s: subset.full is deprecated and ignored: every kernel is built for every"
                    " series (use subset.max_kernels to cap the builds)", table.file)
    max_kernels = table.get("max_kernels", int, 0)
    if max_kernels < 0:
        raise table.fail("max_kernels", f"must be 0 (no limit) or positive, not {max_kernels}")
    raw = table.get("paths", list, None)
    paths = list(DEFAULT_SUBSET_PATHS)
    if raw is not None:
        paths = []
        for i, item in enumerate(raw):
            t = _Table(table.file, f"{table.prefix}.paths[{i}]", item)
            glob, policy = t.get("glob", str), t.get("policy", str)
            if policy not in SUBSET_POLICIES:
                raise t.fail("policy", f"must be one of {', '.join(SUBSET_POLICIES)}, not {policy!r}")
            t.done()
            paths.append((glob, policy))
    table.done()
    return dict(subset_full=full, subset_paths=paths, subset_max_kernels=max_kernels)


def expand(command: list[str], values: dict[str, Any]) -> list[str]:
    """Fill ``{placeholders}`` in an argument list (no shell involved)."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"placeholder {{{name}}} has no value here")
        return str(values[name])
    return [re.sub(r"\{(\w+)\}", one, arg) for arg in command]
