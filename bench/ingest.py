"""Benchmark: the bot's real ingest path over a generated mailbox.

    python3 bench/ingest.py                    # 10,000 messages
    python3 bench/ingest.py --messages 2000
    python3 bench/ingest.py --profile out.prof # cProfile; prints the top of bot/ and b4
    python3 bench/ingest.py --messages 50000 --assemble-each-batch  # the daemon's rhythm

Generates a deterministic mailbox (bench/mailgen.py: series v1..v3 with and
without cover letters, replies with trailers, discussion, bounces,
auto-replies), then times what the daemon does with new mail: a fresh
``State`` in a temp dir, ``spool.spool()`` in batches of 200, then one
``tracker.assemble()`` with the rules of rules/demo.toml (with
``--assemble-each-batch``, also one after every batch, as the daemon does
after each poll). Then single daemon passes over the full window: one with no new mail, one
with one new reply to a patch, one with one new patch (median of three).
Progress goes to stderr; the last stdout lines are

    pass_empty_ms=<x> pass_reply_ms=<x> pass_patch_ms=<x>
    msgs_per_s=<n> peak_rss_mb=<n> messages=<n>

The mailbox is generated batch by batch while spooling, so peak RSS shows
what the bot holds, not the size of the mailbox.
"""

from __future__ import annotations

import argparse
import cProfile
import itertools
import logging
import pstats
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from anywhere without installing

from bench import mailgen  # noqa: E402
from bot.config import rules as config  # noqa: E402
from bot.ingest import spool  # noqa: E402
from bot.series import assembly as series  # noqa: E402
from bot.series import tracker  # noqa: E402
from bot.state import State  # noqa: E402

log = logging.getLogger("bench.ingest")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_s() -> float:
    """CPU seconds of this process (not of the tracker's worker processes)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    return me.ru_utime + me.ru_stime


def batches(messages: int, seed: int, size: int):
    it = mailgen.stream(messages, seed)
    while batch := list(itertools.islice(it, size)):
        yield batch


def run(messages: int, seed: int, batch_size: int, workdir: Path,
        assemble_each_batch: bool = False) -> dict:
    rules = config.load(ROOT / "rules" / "demo.toml", base_dir=workdir)
    series.configure_b4(rules.bot_name, rules.bot_address)
    state = State(workdir / "state.sqlite")
    gen_s = spool_s = each_s = each_cpu = 0.0
    touched_each = 0
    done = new = quarantined = 0
    start = time.perf_counter()
    cpu_start = cpu_s()
    t = start
    for batch in batches(messages, seed, batch_size):
        t_gen = time.perf_counter()
        gen_s += t_gen - t
        result = spool.spool(state, "bench", batch, bot_address=rules.bot_address,
                             loop_id=rules.loop_id, max_bytes=rules.max_message_bytes)
        t = time.perf_counter()
        spool_s += t - t_gen
        done += len(batch)
        if assemble_each_batch:  # the daemon's rhythm: assemble after every poll
            t_asm, c_asm = time.perf_counter(), cpu_s()
            touched_each += tracker.assemble(state, rules)
            t = time.perf_counter()
            each_s += t - t_asm
            each_cpu += cpu_s() - c_asm
        new += result.new
        quarantined += result.quarantined
        if done % (batch_size * 10) == 0 or done == messages:
            log.info("spooled %d/%d (%.0f msgs/s, rss %.0f MB)", done, messages,
                     done / spool_s, peak_rss_mb())
    log.info("assembling ...")
    t_asm = time.perf_counter()
    cpu_asm = cpu_s()
    touched = tracker.assemble(state, rules) + touched_each
    assemble_s = time.perf_counter() - t_asm + each_s
    cpu_end = cpu_s()
    total_s = time.perf_counter() - start - gen_s
    kinds = {r["kind"]: r["n"] for r in state.query(
        "SELECT kind, COUNT(*) AS n FROM messages GROUP BY kind ORDER BY n DESC")}
    states = {r["state"]: r["n"] for r in state.query(
        "SELECT state, COUNT(*) AS n FROM versions GROUP BY state ORDER BY n DESC")}
    passes = single_passes(state, rules)
    state.close()
    return dict(messages=done, new=new, quarantined=quarantined, gen_s=gen_s, spool_s=spool_s,
                assemble_s=assemble_s, total_s=total_s,
                spool_cpu=cpu_asm - cpu_start - each_cpu,
                assemble_cpu=cpu_end - cpu_asm + each_cpu, touched=touched, kinds=kinds,
                states=states, versions=sum(states.values()), passes=passes)


def one_more(state: State, rules, raw: bytes) -> tuple[float, float]:
    """Milliseconds (wall, CPU) of one daemon pass (spool is not counted) after
    ``raw`` arrives. CPU shows the cost on a busy machine, where wall time wobbles."""
    spool.spool(state, "bench", [raw], bot_address=rules.bot_address, loop_id=rules.loop_id)
    t, c = time.perf_counter(), time.process_time()
    tracker.assemble(state, rules)
    return (time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000


def single_passes(state: State, rules) -> dict[str, float]:
    """A pass with nothing new, with one new reply to a patch, with one new patch
    (each the median of three: the first call warms b4's lazily compiled patterns)."""
    t = time.perf_counter()
    tracker.assemble(state, rules)
    empty = (time.perf_counter() - t) * 1000
    replies, patches = [], []
    for n in range(3):
        target = state.one("SELECT msgid, subject FROM messages WHERE kind = 'patch'"
                           " ORDER BY received_at DESC, rowid DESC LIMIT 1 OFFSET ?", (n + 1,))
        reply = (f"From: Sam Reviewer <sam@example.com>\nTo: {mailgen.LIST}\n"
                 f"Subject: Re: {target['subject']}\nMessage-ID: <bench-reply-{n}@example.com>\n"
                 f"In-Reply-To: <{target['msgid']}>\nReferences: <{target['msgid']}>\n\n"
                 "Reviewed-by: Sam Reviewer <sam@example.com>\n").encode()
        patch = (f"From: Jane Doe <jane@example.org>\nTo: {mailgen.LIST}\n"
                 f"Subject: [PATCH] compat: one more {n}\n"
                 f"Message-ID: <bench-patch-{n}@example.org>\n\n"
                 "One more.\n\nSigned-off-by: Jane Doe <jane@example.org>\n---\n"
                 f"diff --git a/compat/x{n}.c b/compat/x{n}.c\n--- a/compat/x{n}.c\n"
                 f"+++ b/compat/x{n}.c\n@@ -1,1 +1,2 @@\n int a;\n+int b;\n").encode()
        replies.append(one_more(state, rules, reply))
        patches.append(one_more(state, rules, patch))
    return dict(empty=empty, reply=statistics.median(r[0] for r in replies),
                patch=statistics.median(p[0] for p in patches),
                reply_cpu=statistics.median(r[1] for r in replies),
                patch_cpu=statistics.median(p[1] for p in patches))


def report_profile(prof: cProfile.Profile, path: str) -> None:
    prof.dump_stats(path)
    stats = pstats.Stats(path, stream=sys.stderr)
    stats.sort_stats("cumulative")
    print(f"--- profile (full dump in {path}) ---", file=sys.stderr)
    stats.print_stats(r"bot/|b4/|email/(message|feedparser|headerregistry)|subprocess", 40)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--messages", type=int, default=10_000, help="mailbox size (10000)")
    ap.add_argument("--seed", type=int, default=1, help="generator seed (1)")
    ap.add_argument("--batch", type=int, default=200, help="messages per spool() call (200)")
    ap.add_argument("--profile", metavar="FILE", help="run under cProfile, dump stats to FILE"
                    " (implies --serial, so b4's time is seen)")
    ap.add_argument("--assemble-each-batch", action="store_true",
                    help="also assemble after every batch, as the daemon does after each poll")
    ap.add_argument("--serial", action="store_true",
                    help="assemble in this process, without the tracker's worker pool")
    args = ap.parse_args(argv)
    serial = bool(args.serial or args.profile) or not hasattr(tracker, "POOL_MIN_THREADS")
    if serial and hasattr(tracker, "POOL_MIN_THREADS"):
        tracker.POOL_MIN_THREADS = sys.maxsize
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(relativeCreated)8.0fms %(name)s: %(message)s")
    for noisy in ("bot", "b4"):  # per-message info/warnings would swamp the figures
        logging.getLogger(noisy).setLevel(logging.ERROR)

    # CPU time, not wall time: other work on the machine does not skew the figures.
    prof = cProfile.Profile(time.process_time) if args.profile else None
    with tempfile.TemporaryDirectory(prefix="bpbot-bench-") as tmp:
        if prof:
            prof.enable()
        res = run(args.messages, args.seed, args.batch, Path(tmp), args.assemble_each_batch)
        if prof:
            prof.disable()
    if prof:
        report_profile(prof, args.profile)

    rate = res["messages"] / res["total_s"] if res["total_s"] else 0.0
    print(f"messages      {res['messages']} ({res['new']} new, "
          f"{res['quarantined']} quarantined)")
    print("kinds         " + ", ".join(f"{k} {n}" for k, n in res["kinds"].items()))
    print(f"spool         {res['spool_s']:.2f} s "
          f"({res['messages'] / res['spool_s']:.0f} msgs/s, batches of {args.batch}; "
          f"cpu {res['spool_cpu']:.2f} s incl. generator)")
    where = "in this process" if serial else "in this process; b4 runs in the tracker's pool"
    print(f"assemble      {res['assemble_s']:.2f} s ({res['touched']} versions touched; "
          f"cpu {res['assemble_cpu']:.2f} s {where})")
    print(f"versions      {res['versions']} (" +
          ", ".join(f"{k} {n}" for k, n in res["states"].items()) + ")")
    print(f"generator     {res['gen_s']:.2f} s (not counted)")
    print(f"memory        peak rss {peak_rss_mb():.0f} MB in this process"
          + ("" if serial else " (pool workers not included; --serial to include b4)"))
    p = res["passes"]
    print(f"pass_empty_ms={p['empty']:.1f} pass_reply_ms={p['reply']:.1f} "
          f"pass_patch_ms={p['patch']:.1f} (cpu: reply {p['reply_cpu']:.1f} ms,"
          f" patch {p['patch_cpu']:.1f} ms)")
    print(f"msgs_per_s={rate:.0f} peak_rss_mb={peak_rss_mb():.0f} messages={res['messages']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
