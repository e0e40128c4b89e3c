"""Mail commands on real servers (dovecot IMAP -> bpbot -> aiosmtpd): help,
a retest refused from a stranger, and a maintainer's retest that runs once
confirmed; a restart answers nothing twice.
"""

from __future__ import annotations

from test_subscriptions import SAMPLE, answer, command_mail, imap_rules, serve

D_MSGID = "20260115072958.5518-1-marek.nowak@example.com"
STRANGER = "Eve Stranger <eve@example.net>"
MAINTAINER = "Luis Maintainer <maintainer@backports.example.org>"


def test_help_then_retest_from_a_stranger_and_from_a_maintainer(tmp_path, imap_server,
                                                                 smtp_server):
    rules = imap_rules(tmp_path, imap_server, smtp_server)
    imap_server.append(SAMPLE["09"].read_bytes())
    imap_server.append(command_mail(1, "help\n", subject="help", frm=STRANGER))
    state = serve(rules)
    got = {m.subject: m for m in smtp_server.take(2, timeout=60)}
    first = got["Re: [PATCH] backports: add timer_shutdown_sync()"]
    assert first.message["X-bpbot-Verdict"] == "NOT-APPLIED"
    helped = got["Re: help"]
    assert helped.rcpt_tos == ["eve@example.net"]
    assert helped.message["In-Reply-To"] == "<20260111-1-cmd@example.net>"
    assert "  retest <message-id> [full]" in helped.message.get_content()

    imap_server.append(command_mail(2, f"retest <{D_MSGID}>\n", frm=STRANGER))
    state = serve(rules)
    [refused] = smtp_server.take(1, timeout=30)
    assert refused.rcpt_tos == ["eve@example.net"]
    assert "retest is for the maintainers" in refused.message.get_content()
    assert state.one("SELECT COUNT(*) AS n FROM runs")["n"] == 1

    imap_server.append(command_mail(3, "Please run this one again everywhere:\n\nretest full\n",
                                    subject="Re: [PATCH] backports: add timer_shutdown_sync()",
                                    frm=MAINTAINER, in_reply_to=first.message["Message-ID"]))
    state = serve(rules)
    [request] = smtp_server.take(1, timeout=30)
    assert request.rcpt_tos == ["maintainer@backports.example.org"]
    assert state.one("SELECT COUNT(*) AS n FROM runs")["n"] == 1  # not before the confirmation

    imap_server.append(answer(request, frm=MAINTAINER))
    state = serve(rules)
    got = {m.subject: m for m in smtp_server.take(2, timeout=60)}
    assert "Queued a retest of v1" in got[f"Re: {request.subject}"].message.get_content()
    again = got["Re: [PATCH] backports: add timer_shutdown_sync()"]
    assert again.message["In-Reply-To"] == first.message["In-Reply-To"]
    assert again.message["Message-ID"] != first.message["Message-ID"]
    assert state.one("SELECT COUNT(*) AS n FROM runs")["n"] == 2
    assert state.one("SELECT full_matrix FROM retests")["full_matrix"] == 1
    # The full matrix was for that one run; later runs go back to the subset.
    assert state.one("SELECT force_full FROM versions")["force_full"] == 0

    state = serve(rules)  # a restart: nothing answered twice
    assert smtp_server.unchecked() == []
    assert state.one("SELECT COUNT(*) AS n FROM outbox WHERE state = 'queued'")["n"] == 0
