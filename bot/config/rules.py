"""Rules: declarative TOML, validated at load against the declared schema
(bot/config/schema.py), then flattened into the ``Rules`` the bot reads.

Every error names the file, the key and what is wrong, all of them at once,
and nothing starts. Relative paths are resolved against ``base_dir`` (the
rules file's folder, or the demo's working dir for the embedded default).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.config.errors import ConfigError, Problem  # noqa: F401 (re-exported)
from bot.config.fields import PLACEHOLDERS, parse_listen  # noqa: F401 (re-exported)
from bot.config.kernels import Kernel
from bot.config.schema import (  # noqa: F401 (re-exported)
    DEFAULT_SUBSET_PATHS,
    SUBSET_POLICIES,
    FileSource,
    ImapSource,
    RulesFile,
    SmtpTable,
)
from bot.config.schema import CommandsTable as CommandRules
from bot.config.schema import validate as _validate

# The example rules, shipped inside the package (bot/rules/ links to the
# top-level rules/ in a checkout; a wheel carries copies).
RULES_DIR = Path(__file__).resolve().parent.parent / "rules"
DEMO_RULES = RULES_DIR / "demo.toml"


def _default(table: type, key: str) -> Any:
    """A key's default, as the schema declares it (the one place defaults live)."""
    return table.model_fields[key].default


@dataclass(frozen=True)
class Source:
    kind: str  # imap | maildir | mbox
    path: Path | None = None
    host: str = ""
    port: int = 993
    ssl: bool = _default(ImapSource, "ssl")
    user: str = ""
    password_file: Path | None = None
    folder: str = _default(ImapSource, "folder")
    idle_seconds: int = _default(ImapSource, "idle_timeout")
    poll_seconds: int = _default(ImapSource, "poll_interval")


@dataclass(frozen=True)
class Smtp:
    host: str = _default(SmtpTable, "host")
    port: int = _default(SmtpTable, "port")
    user: str = _default(SmtpTable, "user")
    password_file: Path | None = None
    starttls: bool = _default(SmtpTable, "starttls")
    timeout: int = _default(SmtpTable, "timeout")


@dataclass(frozen=True)
class Rules:
    """The rules as the bot reads them: the schema's tables flattened
    (``build.jobs`` is ``build_jobs``); defaults come from the schema."""

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
    # [tree] strict_tags: a patch whose subject tag is not in tag_branches is not for
    # this tree: recorded as such (kind not-for-tree), not tested, not answered.
    strict_tags: bool
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
    # [subset] max_kernels: build at most this many kernels per series (0: all);
    # the verdict of a cut run is partial, naming the kernels not built.
    subset_max_kernels: int
    ccache: bool
    executor: str
    rq_url: str
    rq_queue: str
    rq_result_ttl: int
    grace_seconds: int
    window_days: int
    # [series] answer_pull_requests: a one-line "pull requests are not tested" reply.
    answer_pull_requests: bool
    # [limits] (bot/config/schema.py LimitsTable; bot/sandbox/limits.py); 0 means no limit.
    max_message_bytes: int
    max_patches: int
    max_diff_bytes: int
    build_address_space: int
    build_cpu_seconds: int
    build_file_size: int
    build_pids: int
    build_open_files: int
    build_tmp_size: int
    # What one run may write (out/ and build dirs); also the free space it needs.
    run_disk: int
    commands: CommandRules
    # [web] listen = "host:port": `bpbot serve` also serves the status page (bot/web/page.py).
    web_listen: tuple[str, int] | None
    # [generate] verbatim: (tree glob, package dir) pairs the generator copies
    # unchanged; a series touching only those is not generated (bot/testrun/verbatim.py).
    generate_verbatim: tuple[tuple[str, str], ...] = ()
    # [generate] verbatim_unless: a tree file holding one of these is never taken verbatim.
    generate_verbatim_unless: tuple[str, ...] = ()
    # [generate] stamps: package files a series' package takes from the base's (warm.py).
    generate_stamps: tuple[str, ...] = ()
    # [build] widen: run before the last build command with {symbols}, the Kconfig
    # symbols the series' changed code needs that the base's config does not set.
    build_widen: tuple[str, ...] = ()
    # [build] reuse: series builds start from the base's warm build trees (bot/testrun/warm.py).
    build_reuse: bool = True

    def kernel(self, name: str) -> Kernel:
        return next(k for k in self.kernels if k.name == name)


def load(path: str | Path, base_dir: str | Path | None = None) -> Rules:
    """Load and validate a rules file; raise ConfigError naming every bad key."""
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
    """Rules from a parsed file; ``file`` names it in errors."""
    f = _validate(data, file, base)
    return Rules(
        file=file, base_dir=base,
        bot_address=f.bot.address, bot_name=f.bot.name, loop_id=f.bot.loop_id or f.bot.address,
        state_dir=f.bot.state_dir, web_url=f.bot.web_url,
        source=_source(f.source), smtp=Smtp(**f.smtp.model_dump()),
        reply_to_author=f.reply.to_author, reply_cc_list=f.reply.cc_list,
        list_address=f.reply.list_address,
        tree_path=f.tree.path, tree_url=f.tree.url, tree_branch=f.tree.branch,
        tag_branches=dict(f.tree.tag_branches), strict_tags=f.tree.strict_tags,
        upstream=f.tree.upstream,
        generate_commands=f.generate.command, generate_timeout=f.generate.timeout,
        generate_verbatim=f.generate.verbatim,
        generate_verbatim_unless=f.generate.verbatim_unless, generate_stamps=f.generate.stamps,
        build_reuse=f.build.reuse,
        build_commands=f.build.command, build_widen=tuple(f.build.widen),
        build_jobs=f.build.jobs, build_timeout=f.build.timeout,
        output_cap=f.build.output_cap, sandbox=f.build.sandbox, ccache=f.build.ccache,
        executor=f.build.executor,
        kernels=sorted((t.kernel() for t in f.kernels), key=lambda k: k.version_tuple),
        subset_full=bool(f.subset.full), subset_paths=f.subset.rules(),
        subset_max_kernels=f.subset.max_kernels,
        rq_url=f.rq.url, rq_queue=f.rq.queue, rq_result_ttl=f.rq.result_ttl,
        grace_seconds=f.series.grace_period, window_days=f.series.window_days,
        answer_pull_requests=f.series.answer_pull_requests,
        max_message_bytes=f.limits.max_message_bytes, max_patches=f.limits.max_patches,
        max_diff_bytes=f.limits.max_diff_bytes,
        build_address_space=f.limits.build_address_space,
        build_cpu_seconds=f.limits.build_cpu_time, build_file_size=f.limits.build_file_size,
        build_pids=f.limits.build_pids, build_open_files=f.limits.build_open_files,
        build_tmp_size=f.limits.build_tmp_size, run_disk=f.limits.run_disk,
        commands=f.commands, web_listen=f.web.listen,
    )


def _source(table: ImapSource | FileSource) -> Source:
    if isinstance(table, FileSource):
        return Source(kind=table.kind, path=table.path, poll_seconds=table.poll_interval)
    return Source(kind=table.kind, host=table.host, port=table.port or (993 if table.ssl else 143),
                  ssl=table.ssl, user=table.user, password_file=table.password_file,
                  folder=table.folder, idle_seconds=table.idle_timeout,
                  poll_seconds=table.poll_interval)


def expand(command: list[str], values: dict[str, Any]) -> list[str]:
    """Fill ``{placeholders}`` in an argument list (no shell involved)."""
    def one(match: re.Match) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"placeholder {{{name}}} has no value here")
        return str(values[name])
    return [re.sub(r"\{(\w+)\}", one, arg) for arg in command]
