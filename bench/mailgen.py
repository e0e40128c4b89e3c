"""A deterministic generator of backports-list mail, for benchmarks.

``stream(n, seed)`` yields ``n`` raw messages (bytes) in arrival order: patch
series (1-5 patches, with or without a cover letter, v1..v3 in one thread,
now and then a patch lost on the way), review replies with trailers, and
noise (discussion threads, bounces, auto-replies, commands, the bot's own
mail). Messages of concurrent conversations interleave and arrive a little
out of order. Only a window of pending messages is held in memory, so a
large mailbox costs no more memory than a small one.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

BOT = "bpbot@backports.example.org"
LIST = "backports@vger.kernel.org"
START = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WINDOW = 3 * 3600  # seconds of pending mail kept for reordering

AUTHORS = [("Jane Doe", "jane@example.org"), ("Chen Wei", "wei.chen@example.com"),
           ("Maria Rossi", "maria@example.net"), ("Ola Nordmann", "ola@example.no"),
           ("Priya Raman", "priya@example.in"), ("J\u00fcrgen M\u00fcller", "juergen@example.de"),
           ("Hauke Example", "hauke@example.de"), ("Sam Reviewer", "sam@example.com")]
REVIEWERS = [("Sam Reviewer", "sam@example.com"), ("Hauke Example", "hauke@example.de"),
             ("Lee Tester", "lee@example.com"), ("Maria Rossi", "maria@example.net")]
TRAILERS = ["Reviewed-by", "Acked-by", "Tested-by"]
AREAS = [
    ("backport-include/linux/{w}.h", "static inline int backport_{w}_{n}(void)\n{{\n"
     "\treturn {n};\n}}"),
    ("compat/backport-{k}.c", "int backport_{w}_{n}(struct device *dev)\n{{\n"
     "\treturn dev ? {n} : -ENODEV;\n}}\nEXPORT_SYMBOL_GPL(backport_{w}_{n});"),
    ("patches/{n:04d}-{w}-fix.patch", "--- a/drivers/net/wireless/{w}/main.c\n"
     "+++ b/drivers/net/wireless/{w}/main.c\n@@ -{n},1 +{n},1 @@"),
    ("dependencies", "{W} {k}"),
]
WORDS = ["timer", "skbuff", "netdevice", "ieee80211", "wiphy", "list", "overflow", "ktime",
         "device", "firmware", "rtl8xxxu", "mt76", "iwlwifi", "ath12k", "brcmfmac", "mwifiex"]
KERNELS = ["4.19", "5.4", "5.10", "5.15", "6.1"]


@dataclass(order=True)
class _Pending:
    at: float
    seq: int
    raw: bytes = field(compare=False)


class _Writer:
    """Builds one conversation's messages with unique, git-send-email-like ids."""

    def __init__(self, rng: random.Random, serial: int, start: float):
        self.rng, self.serial, self.t = rng, serial, start
        self.out: list[tuple[float, bytes]] = []

    def msgid(self, addr: str, n: int) -> str:
        stamp = (START + timedelta(seconds=self.t)).strftime("%Y%m%d%H%M%S")
        return f"{stamp}.{self.serial}-{n}-{addr}"

    def mail(self, frm: tuple[str, str], subject: str, body: str, msgid: str, *,
             to: str = LIST, parent: str = "", refs: tuple[str, ...] = (),
             extra: str = "", at: float | None = None) -> None:
        at = self.t if at is None else at
        date = (START + timedelta(seconds=at)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        name = frm[0] if frm[0].isascii() else "=?utf-8?q?" + "".join(
            c if c.isascii() and c.isalnum() else "".join(f"={b:02X}" for b in c.encode())
            for c in frm[0]) + "?="
        thread = ""
        if parent:
            ids = " ".join(f"<{r}>" for r in (*refs, parent) if r)
            thread = f"In-Reply-To: <{parent}>\nReferences: {ids}\n"
        head = (f"From: {name} <{frm[1]}>\nTo: {to}\nSubject: {subject}\nDate: {date}\n"
                f"Message-ID: <{msgid}>\n{thread}{extra}MIME-Version: 1.0\n"
                "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 8bit\n\n")
        self.out.append((at, (head + body).encode()))


def _diff(rng: random.Random, serial: int, n: int) -> tuple[str, str, int]:
    path_t, code_t = rng.choice(AREAS)
    w, k = rng.choice(WORDS), rng.choice(KERNELS)
    uniq = serial * 10 + n
    path = path_t.format(w=w, k=k.replace(".", "_"), n=uniq)
    added = code_t.format(w=w, W=w.upper(), k=k, n=uniq).split("\n")
    plus = "".join(f"+{line}\n" for line in added)
    lines = len(added)
    diff = (f"diff --git a/{path} b/{path}\nindex {uniq:012x}..{uniq + 7:012x} 100644\n"
            f"--- a/{path}\n+++ b/{path}\n@@ -10,2 +10,{2 + lines} @@\n"
            f" #include <linux/version.h>\n \n{plus}")
    stat = f" {path} | {lines} {'+' * lines}\n 1 file changed, {lines} insertions(+)\n"
    return path, stat + "\n" + diff, lines


def _series(rng: random.Random, serial: int, start: float) -> list[tuple[float, bytes]]:
    wr = _Writer(rng, serial, start)
    author = rng.choice(AUTHORS)
    topic = f"{rng.choice(WORDS)} helpers for {rng.choice(KERNELS)} (#{serial})"
    count = rng.choice([1, 1, 2, 2, 3, 3, 4, 5])
    cover = count > 1 and rng.random() < 0.7
    prev_root = ""
    for rev in range(1, rng.choice([1, 1, 1, 2, 2, 3]) + 1):
        vtag = f" v{rev}" if rev > 1 else ""
        ids = [wr.msgid(author[1], i + 1) for i in range(count + 1)]
        root = ids[0] if cover else ids[1]
        root_parent = prev_root if prev_root and rng.random() < 0.7 else ""
        posted: list[str] = []
        if cover:
            stat = "".join(f"  {topic} part {i}\n" for i in range(1, count + 1))
            wr.mail(author, f"[PATCH{vtag} 0/{count}] {topic}",
                    f"This series adds {topic}.\n\n{author[0]} ({count}):\n{stat}\n-- \n2.43.0\n",
                    ids[0], parent=root_parent)
            posted.append(ids[0])
        for i in range(1, count + 1):
            wr.t += 1
            if rng.random() < 0.03 and count > 1:
                continue  # lost on the way: the version stays incomplete
            _, diff, _ = _diff(rng, serial * 10 + rev, i)
            counter = f" {i}/{count}" if count > 1 or cover else ""
            parent = "" if ids[i] == root else root
            wr.mail(author, f"[PATCH{vtag}{counter}] {topic} part {i}",
                    f"Part {i} of {topic}, v{rev}.\n\nSigned-off-by: {author[0]} <{author[1]}>\n"
                    f"---\n{diff}-- \n2.43.0\n", ids[i],
                    parent=parent or root_parent, refs=(root_parent,) if parent else ())
            posted.append(ids[i])
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            _review(rng, wr, posted, topic, vtag)
        prev_root = root
        wr.t += rng.uniform(3600, 86400 * 2)
    return wr.out


def _review(rng: random.Random, wr: _Writer, posted: list[str], topic: str, vtag: str) -> None:
    if not posted:
        return
    who = rng.choice(REVIEWERS)
    target = rng.choice(posted)
    at = wr.t + rng.uniform(60, 7200)
    mid = f"{int(at)}.{wr.serial}.{len(wr.out)}.{who[1]}"
    kind = rng.random()
    if kind < 0.6:
        body = (f"> Part of {topic}\n\nLooks good.\n\n{rng.choice(TRAILERS)}: "
                f"{who[0]} <{who[1]}>\n")
    elif kind < 0.8:
        body = "> Reviewed-by: Someone Else <else@example.com>\n\nNot tested yet.\n"
    else:
        body = "> +\treturn 0;\n\nWhy not -ENODEV here?\n"
    wr.mail(who, f"Re: [PATCH{vtag}] {topic}", body, mid, parent=target, at=at)


def _discussion(rng: random.Random, serial: int, start: float) -> list[tuple[float, bytes]]:
    wr = _Writer(rng, serial, start)
    who = rng.choice(AUTHORS)
    subject = f"backports: plans for {rng.choice(KERNELS)} ({serial})"
    root = f"discuss.{serial}@{who[1].split('@')[1]}"
    wr.mail(who, subject, "Does anyone still ship backports on this kernel?\n", root)
    for r in range(rng.choice([0, 1, 2, 4])):
        other = rng.choice(REVIEWERS)
        wr.mail(other, f"Re: {subject}", "> Does anyone still ship backports\n\nWe do.\n",
                f"discuss.{serial}.{r}@{other[1].split('@')[1]}", parent=root,
                at=wr.t + rng.uniform(60, 36000))
    return wr.out


def _noise(rng: random.Random, serial: int, start: float) -> list[tuple[float, bytes]]:
    wr = _Writer(rng, serial, start)
    pick = rng.random()
    host = rng.choice(["mx.example.net", "mail.example.com", "googlemail.com"])
    if pick < 0.35:
        wr.mail(("Mail Delivery System", f"MAILER-DAEMON@{host}"),
                "Undelivered Mail Returned to Sender",
                "I'm sorry to have to inform you that your message could not be delivered.\n",
                f"bounce.{serial}@{host}", to=BOT, extra="Return-Path: <>\n")
    elif pick < 0.7:
        who = rng.choice(AUTHORS)
        wr.mail(who, "Out of office: Re: [PATCH] something", "I am away until Monday.\n",
                f"vacation.{serial}@{who[1].split('@')[1]}",
                parent=f"unknown.{serial}@example.org",
                extra="Auto-Submitted: auto-replied\nPrecedence: bulk\n")
    elif pick < 0.85:
        who = rng.choice(AUTHORS)
        wr.mail(who, "help", "help\n", f"cmd.{serial}@{who[1].split('@')[1]}", to=BOT)
    else:
        wr.mail(("bpbot", BOT), "Re: [PATCH] some series", "bpbot tested this series.\n",
                f"bpbot.{serial}@backports.example.org", parent=f"unknown.{serial}@example.org")
    return wr.out


def stream(n: int, seed: int = 1) -> Iterator[bytes]:
    """Yield ``n`` messages in arrival order (deterministic for a seed)."""
    rng = random.Random(seed)
    pending: list[_Pending] = []
    clock, serial, seq, produced = 0.0, 0, 0, 0
    while produced < n:
        serial += 1
        pick = rng.random()
        make = _series if pick < 0.6 else _discussion if pick < 0.8 else _noise
        for at, raw in make(rng, serial, clock):
            # arrival: send time plus list/MX delay, so some mail overtakes other mail
            seq += 1
            heapq.heappush(pending, _Pending(at + rng.expovariate(1 / 120), seq, raw))
        clock += rng.expovariate(1 / 300)
        while pending and pending[0].at < clock - WINDOW and produced < n:
            yield heapq.heappop(pending).raw
            produced += 1
    # the remaining conversations are cut off at n: that is fine for a benchmark
