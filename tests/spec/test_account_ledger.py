"""The account ledger as values and a real SQLite file: who may send a create, what a second
state does with one already sent, how an account's slots are shared, and the fingerprint that
names an account without holding its key."""

from __future__ import annotations

import base64
import hashlib

import pytest

from batchgen.providers.account import account_of
from batchgen.providers.auth import BearerKey, KlingJwt
from batchgen.runner.sharing import Claimed, decide
from batchgen.state.leases import SlotLeases, holders_of
from batchgen.state.ledger import Ledger, Send, ledger_path


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ledger(tmp_path):
    clock = Clock()
    with Ledger.open(tmp_path / "ledger.sqlite") as opened:
        opened.clock = clock
        opened.note_account("acct", "cometapi", "http://127.0.0.1:1")
        yield opened


def send(**fields) -> Send:
    values = {
        "external_id": "bg-1",
        "state_id": "other",
        "job_id": "j1",
        "status": "submitting",
        "task_id": None,
        "sent_at": 1.0,
        "video_sha256": None,
        "video_path": None,
        "note": None,
    }
    return Send(**{**values, **fields})


def test_a_create_no_state_sent_or_this_state_sent_is_sent():
    """Nothing in the ledger, or this state's own claim: the create is this state's to send."""
    assert decide(None, "me", other_alive=False, resent=False) == Claimed.SEND
    assert decide(send(state_id="me"), "me", other_alive=True, resent=False) == Claimed.SEND


def test_a_video_another_state_holds_is_reused(tmp_path):
    """A finished video, still where the other state put it, is taken from there."""
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"video")
    done = send(status="done", task_id="t1", video_sha256="ab", video_path=str(video))
    assert decide(done, "me", other_alive=False, resent=False) == Claimed.REUSE_VIDEO


def test_a_paid_task_whose_video_is_gone_is_followed(tmp_path):
    """A task another state paid for, video not (or no longer) on disk: followed from here."""
    gone = send(status="done", task_id="t1", video_sha256="ab", video_path=str(tmp_path / "x"))
    running = send(status="accepted", task_id="t1")
    assert decide(gone, "me", other_alive=False, resent=False) == Claimed.FOLLOW
    assert decide(running, "me", other_alive=True, resent=False) == Claimed.FOLLOW


@pytest.mark.parametrize("alive", [True, False])
def test_an_unknown_create_elsewhere_is_never_sent_blindly(alive):
    """Sent by another state with no task known: waited for while that run is alive, else
    unknown here too; only the user's `retry --unknown` takes it over."""
    lost = send(status="submitting")
    expected = Claimed.WAIT if alive else Claimed.UNKNOWN
    assert decide(lost, "me", other_alive=alive, resent=False) == expected
    unknown = send(status="unknown", note="answer lost")
    assert decide(unknown, "me", other_alive=False, resent=False) == Claimed.UNKNOWN
    assert decide(unknown, "me", other_alive=False, resent=True) == Claimed.TAKE_OVER


def test_a_failure_elsewhere_is_a_failure_here():
    """A create that failed in another state fails here too (`retry` sends a new one)."""
    failed = send(status="failed", task_id="t1", note="moderation")
    assert decide(failed, "me", other_alive=False, resent=False) == Claimed.FAILED


def test_the_first_claim_wins_and_the_second_sees_it(ledger):
    """Two states claiming one external id: the first may send it, the second is shown the
    first's claim, and the first's own second claim (a resend after a lost answer) is its."""
    assert ledger.claim("acct", "bg-1", "a", "j1", 1.0) is None
    other = ledger.claim("acct", "bg-1", "b", "j1", 1.0)
    assert other is not None and other.state_id == "a" and other.status == "submitting"
    assert ledger.claim("acct", "bg-1", "a", "j1", 1.0) is None
    assert ledger.claim("other-account", "bg-1", "b", "j1", 1.0) is None


def test_a_claim_follows_its_job_to_the_video(ledger):
    """The claim's owner brings it up to date; another state's update changes nothing."""
    ledger.claim("acct", "bg-1", "a", "j1", 1.4)
    ledger.sent("acct", "b", external_id="bg-1", status="failed")
    ledger.sent("acct", "a", external_id="bg-1", task_id="t1", status="accepted", accepted_at=5.0)
    ledger.sent("acct", "a", external_id="bg-1", status="done", video_path="/v.mp4")
    found = ledger.send("acct", "bg-1")
    assert found is not None
    assert (found.status, found.task_id, found.video_path) == ("done", "t1", "/v.mp4")
    assert ledger.spent("acct") == (pytest.approx(1.4), 1)


def test_the_ledger_lies_in_the_xdg_state_folder_unless_moved(tmp_path):
    """BATCHGEN_LEDGER moves it; else XDG_STATE_HOME, else ~/.local/state."""
    assert ledger_path({"BATCHGEN_LEDGER": str(tmp_path / "l.db")}) == tmp_path / "l.db"
    moved = ledger_path({"XDG_STATE_HOME": str(tmp_path)})
    assert moved == tmp_path / "batchgen" / "ledger.sqlite"
    assert ledger_path({}).parts[-4:] == (".local", "state", "batchgen", "ledger.sqlite")


def leases(ledger, holder: str, share: int = 4) -> SlotLeases:
    return SlotLeases(
        ledger.db, "acct", holder, f"state-{holder}", share, ttl=30, clock=ledger.clock
    )


def test_runs_sharing_a_cap_never_hold_more_than_it(ledger):
    """With a cap of 4, two runs together never hold a fifth slot."""
    ledger.set_slots("acct", 4)
    a, b = leases(ledger, "a"), leases(ledger, "b")
    taken = [a.try_take() for _ in range(3)] + [b.try_take() for _ in range(3)]
    assert taken.count(True) == 4
    assert a.held + b.held == 4


def test_runs_sharing_a_cap_take_turns(ledger):
    """A run holding the whole cap gives a freed slot to the run that waits, not to itself,
    until each holds its fair share."""
    ledger.set_slots("acct", 4)
    a, b = leases(ledger, "a"), leases(ledger, "b")
    assert all(a.try_take() for _ in range(4))
    assert not b.try_take()  # b now waits
    a.give_back()
    assert not a.try_take()  # a is above its share (2) while b waits
    assert b.try_take()
    a.give_back()
    assert b.try_take()
    assert (a.held, b.held) == (2, 2)


def test_a_killed_runs_slots_come_back_when_its_lease_expires(ledger):
    """A run that stops renewing (kill -9) holds nothing once its lease has expired."""
    ledger.set_slots("acct", 2)
    a, b = leases(ledger, "a"), leases(ledger, "b")
    assert a.try_take() and a.try_take()
    assert not b.try_take()
    ledger.clock.now += 29
    b.renew()
    assert not b.try_take()
    ledger.clock.now += 2  # a's lease (30 s) has run out; b renewed its own
    assert b.try_take() and b.try_take()


def test_the_cap_is_learned_from_refusals_and_from_creates_that_hold(ledger):
    """A 1303 with 3 held teaches a cap of 2; a set cap wins over the learned one."""
    a = leases(ledger, "a")
    for _ in range(3):
        assert a.try_take()
    a.throttled()
    assert a.cap() == 2
    a.give_back(finished=False)
    assert not a.try_take()
    ledger.set_slots("acct", 5)
    assert a.try_take()


KEY = "sk-live-0123456789abcdef"


def test_an_account_is_named_without_its_key():
    """The fingerprint is stable, differs with the key, the base URL and the provider, and
    holds neither the key nor its obvious encodings."""
    one = account_of("cometapi", "https://api.cometapi.com/", BearerKey(KEY))
    assert one == account_of("cometapi", "https://api.cometapi.com", BearerKey(KEY))
    assert one != account_of("cometapi", "https://api.cometapi.com", BearerKey(KEY + "x"))
    assert one != account_of("cometapi", "http://127.0.0.1:9", BearerKey(KEY))
    assert one != account_of("kling", "https://api.cometapi.com", BearerKey(KEY))
    encodings = [
        KEY,
        base64.b64encode(KEY.encode()).decode(),
        KEY.encode().hex(),
        hashlib.sha256(KEY.encode()).hexdigest()[:24],
    ]
    assert not any(e in one.fingerprint or one.fingerprint in e for e in encodings)


def test_a_kling_account_is_its_access_key():
    """Kling's JWT credentials name the account by the access key, whatever token is signed."""
    first = KlingJwt("ak-1", "sk-1")
    first.headers()
    assert account_of("kling", "u", first) == account_of("kling", "u", KlingJwt("ak-1", "sk-1"))
    assert account_of("kling", "u", first) != account_of("kling", "u", KlingJwt("ak-2", "sk-1"))


def test_a_learned_cap_rises_only_when_it_held_a_run_back(ledger):
    """Tasks ending while nobody waits leave a learned cap as it is; once it refused a slot,
    as many clean ends as it has slots try it one higher."""
    a = leases(ledger, "a")
    for _ in range(3):
        assert a.try_take()
    a.throttled()
    a.give_back(finished=False)  # the refused create's slot
    for _ in range(2):
        a.give_back()
        assert a.try_take()
    assert a.cap() == 2
    assert not a.try_take()  # held back by the cap
    a.give_back()
    a.give_back()
    assert a.cap() == 3


def test_a_run_alone_keeps_its_slots_for_its_next_creates(ledger):
    """The account's only run takes and gives back its slots without a transaction a task;
    once another run comes, a slot goes back as its task ends, and the other run gets it."""
    ledger.set_slots("acct", 4)
    a, b = leases(ledger, "a"), leases(ledger, "b")
    assert a.take(4) == 4
    statements: list[str] = []
    ledger.db._conn.set_trace_callback(statements.append)
    for _ in range(3):
        a.give_back()
        assert a.try_take()
    assert not any(s.startswith(("BEGIN", "INSERT", "UPDATE", "DELETE")) for s in statements)
    ledger.db._conn.set_trace_callback(None)
    a.give_back()
    assert (a.held, a.using) == (4, 3)  # kept: nobody else is there
    assert not b.try_take()  # the cap is held, b waits
    a.give_back()
    assert (a.held, a.using) == (2, 2)  # b is there now: what a kept goes back
    assert b.try_take()
    assert a.held + b.held <= 4


def test_kept_slots_never_exceed_a_cap_lowered_meanwhile(ledger):
    """A run keeping slots under no cap gives back what exceeds one set meanwhile."""
    a = leases(ledger, "a")
    assert a.take(4) == 4
    ledger.set_slots("acct", 2)
    a.give_back()
    assert a.held == a.using == 3
    assert not a.try_take()


def test_slots_taken_together_respect_the_cap_and_the_turns(ledger):
    """`take(n)` grants what one-by-one takes would: up to the cap, and to a fair share while
    another run waits; an opportunistic take does not say the run waits."""
    ledger.set_slots("acct", 6)
    a, b = leases(ledger, "a"), leases(ledger, "b")
    assert a.take(10) == 6
    assert b.take(3) == 0
    assert not any(h.wanting for h in holders_of(ledger.db, "acct", ledger.clock()))
    assert not b.try_take()  # now b waits
    for _ in range(3):
        a.give_back()
    assert a.take(3) == 0  # a is at its share (3) while b waits
    assert b.take(3) == 3
