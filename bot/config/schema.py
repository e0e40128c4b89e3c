"""The rules file's declared schema: one typed model per TOML table, in the
file's own key names, with unknown keys forbidden and every default here (and
only here). ``validate`` checks a parsed file against it and raises one
ConfigError listing every problem, each as ``<key>: <what is wrong>``.

Checks that span keys (``reply.list_address`` when ``cc_list``, ``rq.url``
with the rq executor) run once the keys they read are valid.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.config.errors import ConfigError, Problem
from bot.config.fields import (
    Addresses,
    AddressPatterns,
    Commands,
    Count,
    Duration,
    GiB,
    Listen,
    Markers,
    MiB,
    Positive,
    PositiveSize,
    RulesPath,
    Size,
    Stamps,
    Verbatim,
    WidenCommand,
    choice,
    problem,
)
from bot.config.kernels import KernelTable, check_kernels

log = logging.getLogger(__name__)
# The schema uses no pydantic plugins. Unless told otherwise, pydantic looks for
# some at the first validation by reading the metadata of every installed
# distribution: ~30 ms of every `bpbot check` (an operator's value is kept).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# Path rules when the rules give none: glob -> policy (see bot/testrun/subset.py).
DEFAULT_SUBSET_PATHS = [
    ("devel/**", "none"), ("*.md", "none"), ("README*", "none"),
    ("dependencies", "versions"),
    ("patches/**", "edges"), ("*.cocci", "edges"), ("gentree.py", "edges"),
    ("copy-list", "edges"), ("lib/**", "edges"),
]
SUBSET_POLICIES = ("none", "guards", "versions", "edges")
Policy = choice(*SUBSET_POLICIES)
# "bwrap" (bubblewrap) or "none" (trusted input only).
SandboxKind = choice("bwrap", "none")
# Where builds run: this host or RQ workers (bot/testrun/remote.py).
Executor = choice("local", "rq")


class Table(BaseModel):
    """A TOML table: no unknown keys, no coercion ("2" is not 2), read-only."""

    # defer_build: the validators are built at the first file validated, not
    # at import, so code that only reads the defaults (bot/sandbox/limits.py)
    # does not pay for them.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, defer_build=True)


class BotTable(Table):
    address: str
    name: str = "bpbot"
    loop_id: str = ""  # "": the address
    state_dir: RulesPath = Field("state", validate_default=True)
    web_url: str = ""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if "@" not in value:
            raise problem(f"must be a mail address, not {value!r}")
        return value.lower()


class ImapSource(Table):
    kind: Literal["imap"]
    host: str
    port: Positive = 0  # 0: 993 with ssl, else 143
    ssl: bool = True
    user: str
    password_file: RulesPath
    folder: str = "INBOX"
    idle_timeout: Duration = 25 * 60
    poll_interval: Duration = 5 * 60

    @field_validator("idle_timeout")
    @classmethod
    def _idle(cls, value: int) -> int:
        if value > 29 * 60:
            raise problem("must be at most 29m (RFC 2177: servers drop IDLE after 30 minutes)")
        return value


class FileSource(Table):
    kind: Literal["maildir", "mbox"]
    path: RulesPath
    poll_interval: Duration = 60


class SmtpTable(Table):
    host: str = "127.0.0.1"
    port: Positive = 25
    user: str = ""
    password_file: RulesPath = None
    starttls: bool = False
    timeout: Duration = 60

    @model_validator(mode="after")
    def _password(self) -> SmtpTable:
        if self.user and self.password_file is None:
            raise problem("is required when user is set (passwords never inline)", "password_file")
        return self


class ReplyTable(Table):
    to_author: bool = True
    cc_list: bool = True
    list_address: str = ""

    @model_validator(mode="after")
    def _list(self) -> ReplyTable:
        if self.cc_list and not self.list_address:
            raise problem("is required when cc_list = true", "list_address")
        return self


class TreeTable(Table):
    path: RulesPath
    url: str = ""
    branch: str = "main"
    upstream: RulesPath = None
    # Subject tag -> branch: "[PATCH main 1/2]" is tested on branch main.
    tag_branches: dict[str, str] = {}
    # A subject tag missing from tag_branches is the patch's error, not a fallback.
    strict_tags: bool = False


class GenerateTable(Table):
    command: Commands
    timeout: Duration = 600
    # Files the generator copies unchanged: a series touching only those is not
    # generated; the mapping is checked against each base's output.
    verbatim: Verbatim = ()
    # A file holding one of these strings is rewritten, not copied, by the
    # generator (gentree.py renames CONFIG_ symbols): never taken verbatim.
    verbatim_unless: Markers = ()
    # Package files the generator writes from the tree's revision (gentree.py's
    # versions): a series' package takes the base's copy.
    stamps: Stamps = ()


class BuildTable(Table):
    command: Commands
    jobs: Positive = 2
    timeout: Duration = 1800
    output_cap: Positive = 4 * MiB
    sandbox: SandboxKind = "bwrap"
    ccache: bool = True
    executor: Executor = "local"
    reuse: bool = True  # series builds start from the base's warm build trees (bot/testrun/warm.py)
    widen: WidenCommand = []  # enables the Kconfig symbols a series needs (bot/testrun/widen.py)


class RqTable(Table):
    url: str = ""
    queue: str = "bpbot-builds"
    result_ttl: Duration = 86400


class PathRule(Table):
    glob: str
    policy: Policy


class SubsetTable(Table):
    full: bool | None = None  # deprecated: every kernel is built; accepted with a warning
    max_kernels: Count = 0
    paths: list[PathRule] | None = None  # None: DEFAULT_SUBSET_PATHS

    def rules(self) -> list[tuple[str, str]]:
        if self.paths is None:
            return list(DEFAULT_SUBSET_PATHS)
        return [(p.glob, p.policy) for p in self.paths]


class SeriesTable(Table):
    grace_period: Duration = 30 * 60
    window_days: Positive = 30
    answer_pull_requests: bool = False


class LimitsTable(Table):
    """[limits] for mail and for untrusted code (bot/sandbox/limits.py); 0 is no limit."""

    max_message_bytes: Positive = 10 * MiB
    max_patches: Positive = 100
    max_diff_bytes: PositiveSize = 5 * MiB
    build_address_space: Size = 4 * GiB
    build_cpu_time: Duration = 30 * 60
    build_file_size: Size = 1 * GiB
    build_pids: Count = 512
    build_open_files: Count = 1024
    build_tmp_size: Size = 1 * GiB
    # What one run may write (out/ and build dirs); also the free space it needs.
    run_disk: Size = 8 * GiB


class CommandsTable(Table):
    """[commands]: mail commands and subscriptions (bot/commands/parse.py)."""

    max_lines: Positive = 5
    maintainers: Addresses = ()
    per_sender_per_hour: Positive = 10
    overall_per_hour: Positive = 60
    token_days: Positive = 3
    subaddress: bool = False
    require_dkim: bool = False
    # Mailing lists (fnmatch, lower case): never answered, never subscribed (bot/ingest/lists.py).
    list_addresses: AddressPatterns = ("*@vger.kernel.org", "*@lists.*")


class WebTable(Table):
    # "host:port": `bpbot serve` also serves the status page (bot/web/page.py).
    listen: Listen = None


class RulesFile(Table):
    """The whole file: its tables, in the order errors are listed."""

    bot: BotTable
    source: ImapSource | FileSource = Field(discriminator="kind")
    smtp: SmtpTable = Field({}, validate_default=True)
    reply: ReplyTable = Field({}, validate_default=True)  # its own check applies
    tree: TreeTable
    generate: GenerateTable
    build: BuildTable
    kernels: list[KernelTable]
    rq: RqTable = Field({}, validate_default=True)
    subset: SubsetTable = Field({}, validate_default=True)
    series: SeriesTable = Field({}, validate_default=True)
    limits: LimitsTable = Field({}, validate_default=True)
    commands: CommandsTable = Field({}, validate_default=True)
    web: WebTable = Field({}, validate_default=True)

    @field_validator("kernels")
    @classmethod
    def _kernels(cls, tables: list[KernelTable]) -> list[KernelTable]:
        return check_kernels(tables)

    @model_validator(mode="after")
    def _rq_url(self) -> RulesFile:
        if self.build.executor == "rq" and not self.rq.url:
            raise problem("is required when build.executor = \"rq\" (e.g. redis://host:6379/0)",
                          "rq.url")
        return self


# The defaults of [limits] (bot/sandbox/limits.py takes its own from here).
LIMITS = LimitsTable.model_construct()
# Fields whose value is a union told apart by a key: pydantic puts that key's
# value ("imap") in the error's location, which the file does not have.
_TAGGED = {("source",): "kind"}


def validate(data: dict, file: str, base: Path) -> RulesFile:
    """The file's tables as models; ConfigError with every problem found."""
    try:
        rules = RulesFile.model_validate(data, context={"base": base})
    except ValidationError as exc:
        raise ConfigError.of(file, [_problem(e) for e in exc.errors()]) from None
    if rules.subset.full is not None:
        log.warning("%s: subset.full is deprecated and ignored: every kernel is built for every"
                    " series (use subset.max_kernels to cap the builds)", file)
    return rules


_TYPES = {"int_type": "int", "string_type": "str", "bool_type": "bool", "list_type": "list",
          "dict_type": "dict", "model_type": "dict", "model_attributes_type": "dict",
          "tuple_type": "list"}


def _problem(error: dict) -> Problem:
    """One pydantic error in the file's words: the dotted key and today's text."""
    loc = list(error["loc"])
    for field in _TAGGED:
        if tuple(loc[:len(field)]) == field and len(loc) > len(field):
            del loc[len(field)]
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "config":
        text, sub = ctx["problem"], ctx.get("key", "")
    elif kind == "missing":
        text, sub = "is required", ""
    elif kind == "extra_forbidden":
        text, sub = "unknown key", ""
    elif kind == "union_tag_not_found":
        text, sub = "is required", _TAGGED.get(tuple(loc), "")
    elif kind == "union_tag_invalid":
        tags = ctx.get("expected_tags", "").replace("'", "")
        text, sub = f"must be one of {tags}, not {ctx.get('tag')!r}", _TAGGED.get(tuple(loc), "")
    elif kind in _TYPES:
        text, sub = f"must be {_TYPES[kind]}, not {type(value).__name__} {value!r}", ""
    else:
        text, sub = error["msg"], ""
    return Problem(_key(loc, sub), text)


def _key(loc: list, sub: str) -> str:
    """('kernels', 2, 'path') -> 'kernels[2].path'; ``sub`` is appended likewise."""
    key = ""
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    if sub:
        key += sub if sub.startswith("[") or not key else f".{sub}"
    return key or "(top)"
