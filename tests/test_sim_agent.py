"""The demo fleet's simulated SSM agents, driven end to end like a real client would.

Every test starts the loopback AWS endpoint, calls StartSession with aiobotocore, then speaks the
data-channel protocol over a real websocket with the project's own client-role DataChannel
(tests/sim_client.py). Shells run in real ptys, port sessions reach real local TCP servers, KMS
sessions use the simulated KMS. The "shape" tests compare what our agent sends with the frames the
real SSM agent sent in ``shared/ssm/vectors``.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from ssmtui.protocol.channel import ChannelConfig
from ssmtui.protocol.frames import Flag, MessageType, PayloadType, decode_frame
from ssmtui.sim.agent import attach_agents
from ssmtui.sim.agent_pty import split_utf8
from ssmtui.sim.faults import FaultPlan, Rate, parse_fault
from ssmtui.sim.state import SimState
from tests.sim_client import RawClient, SimClient, early_input, frame_shape
from tests.sim_harness import (
    DB_PROXY,
    INTERACTIVE,
    NONINTERACTIVE,
    OLD_AGENT,
    PORT_DOC,
    REMOTE_DOC,
    SEQ,
    WEB_DEV,
    WEB_EU,
    Sim,
    aws_env,  # noqa: F401  (autouse: keeps machine-wide AWS/proxy settings out)
    counts,
    echo_streams,
    finish,
    leftovers,
    running_sim,
    sim_fixture,  # noqa: F401  (the `sim` fixture)
    tcp_server,
)
from tests.vectors import VECTORS, load_trace

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- shells and commands


async def test_shell_round_trip(sim: Sim) -> None:
    c = await sim.start(WEB_DEV)
    ready = await c.wait_ready()
    assert ready.session_type == "Standard_Stream" and not ready.handshake
    await c.wait_output(b"$ ")
    assert b"[ssm-user@web-dev-1 " in c.output
    await c.send_size(120, 40)
    await c.type("echo $((6*7)); stty size\r")
    await c.wait_output(b"\r42\r\n40 120\r\n")  # (after bash's bracketed-paste-off escape)
    await c.type("exit 3\r")
    assert await finish(c) == 1006
    assert c.states == ["Connected", "Terminating"] and c.channel_closed is not None
    last = c.frames()[-2:]
    assert [f.message_type for f in last] == ["agent_session_state", "channel_closed"]
    assert sim.state.sessions[c.channel.session_id].status == "Terminated"
    home = sim.hub.config.scratch_root / WEB_DEV / "home"
    assert home.is_dir() and home.stat().st_mode & 0o777 == 0o700


async def test_shell_keeps_utf8_characters_whole(sim: Sim) -> None:
    c = await sim.start(WEB_DEV)
    await c.wait_output(b"$ ")
    await c.type("printf '\\303\\251%.0s' $(seq 3000); echo; echo END-$((1+1))\r")
    await c.wait_output(b"END-2")
    outputs = [f.payload for f in c.frames() if f.payload_type == PayloadType.OUTPUT]
    assert max(map(len, outputs)) <= 1024
    for payload in outputs:
        payload.decode("utf-8")  # never a character cut in two
    assert c.output.count("é".encode()) >= 3000
    assert split_utf8(b"ab\xc3") == (b"ab", b"\xc3") and split_utf8(b"\xe2\x82\xac") == (
        b"\xe2\x82\xac",
        b"",
    )
    await c.type("exit\r")
    await finish(c)


async def test_interactive_command_has_no_exit_code(sim: Sim) -> None:
    c = await sim.start(WEB_DEV, INTERACTIVE, command="echo hi; exit 4")
    assert await finish(c) == 1006
    assert c.output == b"hi\r\n" and c.exit_code is None and c.handshake is None
    assert c.states == ["Connected", "Terminating"]


async def test_noninteractive_command(sim: Sim) -> None:
    c = await sim.start(WEB_DEV, NONINTERACTIVE, command="echo hello; echo oops >&2; exit 3")
    assert await finish(c) == 1006
    assert c.ready is not None and c.ready.session_type == "NonInteractiveCommands"
    assert (bytes(c.output), bytes(c.stderr), c.exit_code) == (b"hello\n", b"oops\n", 3)
    types = [f.payload_type for f in c.frames() if f.message_type == "output_stream_data"]
    assert types[:2] == [5, 7] and types[-1] == PayloadType.EXIT_CODE
    assert c.states == ["Connected", "Terminating"] and c.channel_closed is not None


async def test_noninteractive_ctrl_c_interrupts(sim: Sim) -> None:
    c = await sim.start(WEB_DEV, NONINTERACTIVE, command="echo started; exec sleep 30")
    await c.wait_output(b"started")
    await c.type(b"\x03")
    assert await finish(c) == 1006
    assert c.exit_code == -1  # killed by SIGINT; Go reports -1


async def test_terminate_session_api(sim: Sim) -> None:
    c = await sim.start(WEB_DEV)
    await c.wait_output(b"$ ")
    agent = sim.agent(c)
    await sim.call("ssm", "terminate_session", SessionId=c.channel.session_id)
    assert await finish(c) == 1006
    assert c.channel_closed is not None and "Terminating" not in c.states
    assert agent.done.is_set() and agent.plugin.pty.proc.returncode is not None
    mine = [{"key": "SessionId", "value": c.channel.session_id}]  # not the fleet's seeded ones
    desc = await sim.call("ssm", "describe_sessions", State="History", Filters=mine)
    assert [s["Status"] for s in desc["Sessions"]] == ["Terminated"]


async def test_bad_token_is_refused(sim: Sim) -> None:
    c = await sim.start(WEB_DEV, connect=False)
    c.token = "not-the-token"
    await c.connect()
    assert await c.wait_closed() == 1008
    assert c.received == [] and not sim.hub.sessions
    await c.aclose()


async def test_input_before_the_shell_is_ready_is_not_acked(sim: Sim) -> None:
    sim.hub.add_fault(FaultPlan(instance_id=WEB_DEV, slow_start=0.5))
    c = await sim.start(WEB_DEV, connect=False)
    raw = RawClient(c.stream_url, c.token)
    await raw.connect()
    size = raw.frame(MessageType.INPUT_STREAM_DATA, 0, PayloadType.SIZE, b'{"cols":90,"rows":30}')
    command = raw.frame(MessageType.INPUT_STREAM_DATA, 1, PayloadType.OUTPUT, b"stty size\r")
    await raw.send_raw(size)
    await raw.send_raw(command)
    await raw.wait_for(lambda: 1 in raw.acked)  # ahead of the expected seq: acked and held
    await asyncio.sleep(0.2)
    assert 0 not in raw.acked  # Size came before the pty: neither acked nor consumed
    while 0 not in raw.acked:  # the client's resend is what gets it through
        await raw.send_raw(size)
        await asyncio.sleep(0.2)
    await raw.wait_for(lambda: b"30 90" in raw.output)
    await raw.aclose()


# --------------------------------------------------------------------------- port forwarding


async def test_port_forwarding_mux_echo(sim: Sim) -> None:
    sim.hub.config = replace(sim.hub.config, pace=True)
    async with tcp_server() as port:
        c = await sim.start(WEB_DEV, PORT_DOC, portNumber=port)
        ready = await c.wait_ready()
        assert ready.properties == {"portNumber": str(port), "type": "LocalPortForwarding"}
        assert c.port_mode == "mux"
        assert not sim.agent(c).plugin.mode.smux.keepalive  # type: ignore[attr-defined]
        await echo_streams(c, 3, 100_000)
        payloads = [f.payload for f in c.frames() if f.payload_type == PayloadType.OUTPUT]
        assert max(map(len, payloads)) <= 1024
        await c.send_flag(Flag.TERMINATE_SESSION)
        assert await finish(c) == 1006
    assert c.states == ["Connected"] and c.channel_closed is not None  # no Terminating
    assert sim.state.sessions[c.channel.session_id].status == "Terminated"


@pytest.mark.parametrize(
    ("target", "version"),
    [(OLD_AGENT, "1.2.707.0"), (WEB_DEV, "1.0.0")],
    ids=["old-agent", "old-client"],
)
async def test_port_forwarding_basic_echo(sim: Sim, target: str, version: str) -> None:
    async with tcp_server() as port:
        c = await sim.start(target, PORT_DOC, portNumber=port, client_version=version)
        await c.wait_ready()
        assert c.port_mode == "basic" and c.mux is None
        assert sim.agent(c).client_version == version
        blob = os.urandom(50_000)
        await c.type(blob)
        await c.wait_for(lambda: len(c.output) >= len(blob))
        assert c.output == blob
        await c.send_flag(Flag.DISCONNECT_TO_PORT)  # local connection closed: agent hangs up
        await c.type(b"again")  # the next data re-dials the destination
        await c.wait_output(b"again")
        await c.send_flag(Flag.TERMINATE_SESSION)
        assert await finish(c) == 1006
    assert "Terminating" not in c.states


async def test_port_forwarding_to_mapped_remote_host(tmp_path: Path) -> None:
    name = "mydb.cluster-xyz.us-east-1.rds.amazonaws.com"
    async with running_sim(tmp_path, host_map={name: "127.0.0.1"}) as sim, tcp_server() as port:
        c = await sim.start(DB_PROXY, REMOTE_DOC, host=name, portNumber=port, localPortNumber=0)
        ready = await c.wait_ready()
        assert ready.properties == {
            "host": name,
            "localPortNumber": "0",
            "portNumber": str(port),
            "type": "LocalPortForwarding",
        }
        await echo_streams(c, 1, 5000)
        await c.send_flag(Flag.TERMINATE_SESSION)
        await finish(c)


async def test_port_forwarding_unreachable_destination(sim: Sim) -> None:
    async with tcp_server() as port:
        pass  # closed again: nothing listens on it now
    c = await sim.start(WEB_DEV, PORT_DOC, portNumber=port)
    await c.wait_ready()
    assert c.mux is not None
    sid = await c.mux.open_stream()
    await c.wait_for(lambda: sid in c.mux.peer_closed)  # type: ignore[union-attr]
    assert c.flags == [Flag.CONNECT_TO_PORT_ERROR]
    flag_frames = [f for f in c.frames() if f.payload_type == PayloadType.FLAG]
    assert [f.payload for f in flag_frames] == [b"\x00\x00\x00\x03"]  # a frame of its own
    await c.send_flag(Flag.TERMINATE_SESSION)
    await finish(c)


async def test_port_mux_keepalive_for_old_clients_and_never_kms(sim: Sim) -> None:
    async with tcp_server() as port:
        c = await sim.start(
            WEB_EU, PORT_DOC, region="eu-west-1", portNumber=port, client_version="1.2.0.0"
        )
        await c.wait_ready()  # eu-west-1 sets a KMS key, but Port sessions are never encrypted
        assert c.handshake is not None and not c.handshake.encrypted and c.port_mode == "mux"
        mux = sim.agent(c).plugin.mode  # type: ignore[attr-defined]
        assert mux.smux.keepalive  # ClientVersion <= 1.2.331.0: the agent sends NOPs
        mux.handle_timer(time.time() + 10.5)  # the 10 s tick, without the wait
        nop = bytes([1, 3, 0, 0, 0, 0, 0, 0])
        await c.wait_for(lambda: any(f.payload == nop for f in c.frames()))
        await echo_streams(c, 1, 3000)
        await c.send_flag(Flag.TERMINATE_SESSION)
        await finish(c)


# --------------------------------------------------------------------------- KMS


async def test_kms_encrypted_shell(sim: Sim) -> None:
    c = await sim.start(WEB_EU, region="eu-west-1")
    ready = await c.wait_ready()
    assert ready.handshake and c.handshake is not None and c.handshake.encrypted
    assert c.handshake.customer_message == "This session is encrypted using AWS KMS."
    await c.send_size(100, 30)
    await c.type("echo secret-$((40+2))\r")
    await c.wait_output(b"secret-42")
    frames = c.frames()
    assert [f.payload_type for f in frames if f.message_type == "output_stream_data"][:3] == [
        5,
        8,
        7,
    ]
    for f in frames:
        if f.payload_type == PayloadType.OUTPUT:
            assert b"secret" not in f.payload and len(f.payload) <= 1024 + 28
    sent = [decode_frame(m) for m in c.sent]
    typed = [f for f in sent if f.payload_type == PayloadType.OUTPUT]
    assert typed and all(b"secret" not in f.payload for f in typed)
    await c.type("exit\r")
    assert await finish(c) == 1006
    assert c.states == ["Connected", "Terminating"]


async def test_kms_wrong_context_fails_the_session(sim: Sim) -> None:
    """As in kms/agent-shell-kms-badctx: the agent's kms:Decrypt fails, it drops the line."""
    c = await sim.start(WEB_EU, region="eu-west-1", connect=False)
    generate = c.kms
    assert generate is not None

    async def wrong_target(key_id: str, context: dict[str, str]) -> tuple[bytes, bytes]:
        return await generate(key_id, {**context, "aws:ssm:TargetId": "i-00000000000000000"})

    c.kms = wrong_target
    await c.connect()
    assert await finish(c) == 1006
    assert c.ready is None and c.states == ["Connected"]
    assert c.channel_closed is not None and "InvalidCiphertext" in c.channel_closed.output
    assert sim.state.sessions[c.channel.session_id].status == "Failed"


async def test_shell_profile_and_run_as_preferences(sim: Sim) -> None:
    sim.state.preferences["us-east-1"] = {
        "runAsEnabled": True,
        "runAsDefaultUser": "ec2-user",
        "shellProfile": {"linux": "export GREETING=from-profile", "windows": ""},
    }
    c = await sim.start(WEB_DEV)
    await c.wait_output(b"[ec2-user@web-dev-1 ")
    await c.type("echo $GREETING-$USER\r")
    await c.wait_output(b"from-profile-ec2-user")
    await c.type("exit\r")
    await finish(c)


# --------------------------------------------------------------------------- the real agent's shape

CV = "1.2.677.0"  # the throwaway client of the recorded traces


async def scenario_shell(sim: Sim) -> tuple[SimClient | RawClient, int | None]:
    c = await sim.start(WEB_DEV, client_version=CV)
    await c.wait_output(b"$ ")
    await c.send_size(120, 40)
    await c.type("echo hel''lo; echo done-$((6*7))\r")
    await c.wait_output(b"done-42")
    await c.type("exit\r")
    return c, await finish(c)


async def scenario_port_basic(sim: Sim) -> tuple[SimClient | RawClient, int | None]:
    async with tcp_server(http=True) as port:  # SSH-style Port session: no "type"
        c = await sim.start(WEB_DEV, "AWS-StartSSHSession", portNumber=port, client_version=CV)
        await c.wait_ready()
        await c.type(b"GET /basic HTTP/1.0\r\nHost: x\r\n\r\n")
        return c, await finish(c)  # the destination closes: the agent ends the session


async def scenario_port_mux(sim: Sim) -> tuple[SimClient | RawClient, int | None]:
    async with tcp_server(http=True) as port:
        c = await sim.start(WEB_DEV, PORT_DOC, portNumber=port, client_version=CV)
        await c.wait_ready()
        assert c.mux is not None
        sids = [await c.mux.open_stream(), await c.mux.open_stream()]
        for sid, path in zip(sids, ("/one", "/big"), strict=True):
            await c.mux.write(sid, f"GET {path} HTTP/1.0\r\n\r\n".encode())
        await c.wait_for(lambda: set(sids) <= c.mux.peer_closed)  # type: ignore[union-attr]
        for sid in sids:
            await c.mux.close_stream(sid)
        await c.send_flag(Flag.TERMINATE_SESSION)
        return c, await finish(c)


async def scenario_noninteractive(sim: Sim) -> tuple[SimClient | RawClient, int | None]:
    command = "echo hello; echo oops >&2; exit 3"
    c = await sim.start(WEB_DEV, NONINTERACTIVE, command=command, client_version=CV)
    return c, await finish(c)


async def scenario_interactivecommands(sim: Sim) -> tuple[SimClient | RawClient, int | None]:
    sim.hub.add_fault(FaultPlan(instance_id=WEB_DEV, slow_start=0.3))  # a slow plugin start
    sim.hub.config = replace(sim.hub.config, first_read_delay=0.5)  # (real agent: 1 s)
    c = await sim.start(WEB_DEV, INTERACTIVE, command="echo hi; exit 4", connect=False)
    raw = RawClient(c.stream_url, c.token)
    await raw.connect()
    size = raw.frame(MessageType.INPUT_STREAM_DATA, 0, PayloadType.SIZE, b'{"cols":120,"rows":40}')
    while 0 not in raw.acked and raw.close_code is None:  # resend unacked input
        await raw.send_raw(size)
        await asyncio.sleep(0.2)
    await raw.wait_for(lambda: raw.close_code is not None)
    await raw.aclose()
    return raw, raw.close_code


async def scenario_shell_kms(sim: Sim) -> tuple[SimClient | RawClient, int | None]:
    config = ChannelConfig(client_version=CV, acknowledge_challenge=False)
    c = await sim.start(WEB_EU, region="eu-west-1", client_version=CV, config=config)
    await c.wait_ready()
    await c.send_size(120, 40)
    await c.wait_output(b"$ ")
    await c.type("echo hi\r")
    await c.wait_output(b"hi\r\n")
    await c.type("exit\r")
    return c, await finish(c)


SCENARIOS = {
    "agent-shell": scenario_shell,
    "agent-port-basic": scenario_port_basic,
    "agent-port-mux": scenario_port_mux,
    "agent-noninteractive": scenario_noninteractive,
    "agent-interactivecommands": scenario_interactivecommands,
    "kms/agent-shell-kms": scenario_shell_kms,
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_frames_have_the_real_agents_shape(sim: Sim, name: str) -> None:
    trace = load_trace(VECTORS / f"{name}.jsonl")
    real = [r.raw for r in trace.frames("agent->client")]
    real_close = next(
        e.get("close_code", e.get("code"))
        for e in trace.events
        if e.get("ev") in ("ws_closed", "ws_close") and "agent" in (e.get("who"), e.get("role"))
    )
    timeline = [(r.dir, r.raw) for r in trace.records if r.ws == "bin"]

    client, code = await SCENARIOS[name](sim)
    ours = client.raw if isinstance(client, RawClient) else client.received
    assert frame_shape(ours, code) == frame_shape(real, real_close)
    if isinstance(client, RawClient):
        assert early_input(client.timeline) == early_input(timeline) == (0, True)
    # As the service, we then say channel_closed (the relay did the same in the traces).
    assert decode_frame(ours[-1]).message_type == MessageType.CHANNEL_CLOSED


# --------------------------------------------------------------------------- faults


async def test_fault_drop_both_ways_is_recovered_by_resend(sim: Sim) -> None:
    sim.hub.add_fault(FaultPlan(drop=Rate(0.3), direction="both", seed=7))
    c = await sim.start(WEB_DEV, NONINTERACTIVE, command="seq 1 3000")
    assert await finish(c) == 1006
    assert c.output == SEQ and c.exit_code == 0
    agent = sim.agent(c)
    assert agent.faults.stats["dropped_out"] > 0 and agent.faults.stats["dropped_in"] > 0
    assert agent.channel.frames_resent > 0


async def test_fault_duplicate_reorder_delay(sim: Sim) -> None:
    plan = FaultPlan(
        duplicate=Rate(every=3), reorder=Rate(every=4), delay=0.2, delay_rate=Rate(every=7)
    )
    sim.hub.add_fault(plan)
    c = await sim.start(WEB_DEV, NONINTERACTIVE, command="seq 1 3000")
    assert await finish(c) == 1006
    assert c.output == SEQ
    seqs, duplicates = counts(c)
    assert duplicates > 0 and seqs != sorted(seqs)
    stats = sim.agent(c).faults.stats
    assert stats["duplicated_out"] and stats["reordered_out"] and stats["delayed_out"]


async def test_fault_stop_acking(sim: Sim) -> None:
    sim.hub.add_fault(FaultPlan(stop_acking=True))
    c = await sim.start(WEB_DEV)
    await c.wait_output(b"$ ")
    for i in range(3):
        await c.type(f"echo n-{i}-$((1+{i}))\r")
    await c.wait_output(b"n-2-3")  # input is used, just never acknowledged
    await c.wait_for(lambda: c.channel.frames_resent > 0)
    assert c.channel.in_flight == 3
    assert all(f.message_type != "acknowledge" for f in c.frames())
    await c.type("exit\r")
    assert await finish(c) == 1006


async def test_fault_close_after_n_frames_then_resume(sim: Sim) -> None:
    sim.hub.add_fault(FaultPlan(close_after=10))
    c = await sim.start(WEB_DEV)
    await c.wait_output(b"$ ")
    await c.type("export MARK=resumed-ok\r")
    while c.connected:
        await c.type("echo tick\r")
        await asyncio.sleep(0.05)
    assert c.close_code == 1006 and c.channel_closed is None  # dropped, no close frame
    assert sim.agent(c).faults.frames_sent == 10
    resumed = await sim.call("ssm", "resume_session", SessionId=c.channel.session_id)
    await c.connect(token=resumed["TokenValue"], stream_url=resumed["StreamUrl"])
    await c.type("echo $MARK-again\r")
    await c.wait_output(b"resumed-ok-again")  # same shell, same channel, nothing lost
    await c.type("exit\r")
    assert await finish(c) == 1006 and c.states[-1] == "Terminating"


async def test_fault_corrupt_digest(sim: Sim) -> None:
    sim.hub.add_fault(FaultPlan(corrupt=3))
    c = await sim.start(WEB_DEV, NONINTERACTIVE, command="seq 1 3000")
    assert await finish(c) == 1006
    assert c.dropped == 1 and c.output == SEQ  # FrameDropped, then the resend repaired it
    assert sim.agent(c).faults.stats["corrupted"] == 1


async def test_fault_slow_agent(sim: Sim) -> None:
    sim.hub.add_fault(FaultPlan(slow=0.05))
    c = await sim.start(WEB_DEV, NONINTERACTIVE, command="seq 1 1500")
    assert await finish(c) == 1006
    times = [
        t
        for t, f in zip(c.arrivals, c.frames(), strict=True)
        if f.message_type == "output_stream_data"
    ]
    assert len(times) >= 8 and times[-1] - times[0] >= 0.05 * (len(times) - 1) * 0.9


async def test_fault_handshake_ignored_times_out(sim: Sim) -> None:
    sim.hub.config = replace(sim.hub.config, handshake_timeout=0.5)
    sim.hub.add_fault(FaultPlan(handshake="ignore"))
    c = await sim.start(WEB_DEV, NONINTERACTIVE, command="echo never")
    assert await finish(c) == 1006
    assert c.ready is None and c.output == b"" and c.channel.frames_resent > 0
    assert c.channel_closed is not None and "Handshake failed" in c.channel_closed.output
    assert sim.state.sessions[c.channel.session_id].status == "Failed"


async def test_fault_handshake_drop(sim: Sim) -> None:
    sim.hub.add_fault(FaultPlan(handshake="drop"))
    c = await sim.start(WEB_DEV, PORT_DOC, portNumber=80)
    assert await finish(c) == 1006
    assert c.ready is None and c.states == ["Connected"] and c.channel_closed is not None
    assert sim.state.sessions[c.channel.session_id].status == "Failed"


async def test_fault_instance_goes_offline(sim: Sim) -> None:
    sim.hub.add_fault(FaultPlan(offline_after=0.3))
    c = await sim.start(WEB_DEV)
    await c.wait_output(b"$ ")
    assert await finish(c) == 1006 and c.channel_closed is None and "Terminating" not in c.states
    info = await sim.call("ssm", "describe_instance_information")
    ping = {i["InstanceId"]: i["PingStatus"] for i in info["InstanceInformationList"]}
    assert ping[WEB_DEV] == "ConnectionLost"
    assert sim.state.sessions[c.channel.session_id].status == "Failed"
    with pytest.raises(Exception, match="TargetNotConnected"):
        await sim.start(WEB_DEV, connect=False)
    sim.hub.set_online(WEB_DEV)
    await (await sim.start(WEB_DEV)).aclose()


def test_parse_fault_spec() -> None:
    spec = (
        "agent:drop=0.1,dup=1/5,reorder=0.05,delay=0.2@1/3,noack,close=40,corrupt=3,slow=0.01,"
        "handshake=ignore,offline=5,slowstart=1,dir=both,seed=9,instance=i-0123"
    )
    assert parse_fault(spec) == FaultPlan(
        instance_id="i-0123",
        seed=9,
        direction="both",
        drop=Rate(0.1),
        duplicate=Rate(every=5),
        reorder=Rate(0.05),
        delay=0.2,
        delay_rate=Rate(every=3),
        stop_acking=True,
        close_after=40,
        corrupt=3,
        slow=0.01,
        handshake="ignore",
        offline_after=5.0,
        slow_start=1.0,
    )
    assert parse_fault("handshake=drop,session=sess-1") == FaultPlan(
        handshake="drop", session_id="sess-1"
    )
    for bad in (
        "",
        "drop",
        "drop=2",
        "dup=2/3",
        "explode=1",
        "handshake=maybe",
        "close=0",
        "dir=up",
    ):
        with pytest.raises(ValueError, match="bad agent fault spec"):
            parse_fault(bad)


# --------------------------------------------------------------------------- cleanup


async def test_nothing_outlives_sessions_or_the_server(tmp_path: Path) -> None:
    _, ptmx_before, _ = leftovers()
    async with running_sim(tmp_path, resume_timeout=0.3) as sim, tcp_server() as port:
        shell = await sim.start(WEB_DEV)
        await shell.wait_output(b"$ ")
        await shell.type("sleep 1000 & echo bg-$((1+1))\r")
        await shell.wait_output(b"bg-2")
        command = await sim.start(WEB_DEV, NONINTERACTIVE, command="echo go; sleep 1000")
        await command.wait_output(b"go")
        tunnel = await sim.start(WEB_DEV, PORT_DOC, portNumber=port)
        await tunnel.wait_ready()
        await echo_streams(tunnel, 1, 1000)
        gone = await sim.start(WEB_DEV)  # a client that vanishes without a word
        await gone.wait_output(b"$ ")
        gone.drop_connection()
        agent = sim.agent(gone)
        async with asyncio.timeout(20):
            await agent.done.wait()  # the session expired after resume_timeout
        assert sim.state.sessions[gone.channel.session_id].status == "Terminated"
        sessions = list(sim.state.sessions)
        assert len(leftovers(sessions)[0]) >= 4  # bash, sleep &, sh/sleep of the command
    for c in (shell, command, tunnel):  # server shutdown: channel_closed, then the drop
        assert await finish(c) == 1006 and c.channel_closed is not None
    await gone.aclose()
    assert leftovers(sessions) == ([], ptmx_before, [])
    assert (tmp_path / "scratch" / WEB_DEV / "home").is_dir()  # the caller's scratch stays


async def test_default_scratch_is_temporary() -> None:
    state = SimState()
    hub = attach_agents(state)
    root = hub.config.scratch_root
    assert root.is_dir() and state.data_channel_handler == hub.handle
    await state.shutdown()
    assert not root.exists()
