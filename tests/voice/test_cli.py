"""``jetfleet voice ...`` as a user runs it, and the Python client, against the shared real server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from jetfleet.voice.client import JetsonVoiceClient
from jetfleet.voice.errors import VoiceRequestError, VoiceServerUnavailable
from tests.support.processes import free_port, jetfleet_cmd, subprocess_env

from .conftest import MODEL_CACHE, VoiceServer, serve_cmd


def run(argv: list[str], timeout: float = 180, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=subprocess_env(**env))


def send(server: VoiceServer, *args: str) -> subprocess.CompletedProcess[str]:
    return run(jetfleet_cmd("voice", "send", "--jetson-url", server.url, *args))


def test_send_text_command(voice_server: VoiceServer) -> None:
    done = send(voice_server, "--command", "sta op", "--json")
    assert done.returncode == 0, done.stderr
    reply = json.loads(done.stdout)
    assert reply["command"]["action"] == "stand_up" and reply["node"] == "test-node"


def test_send_prints_a_table_and_fails_on_rejection(voice_server: VoiceServer) -> None:
    done = send(voice_server, "--command", "light down")
    assert done.returncode == 1
    assert "rejected" in done.stdout and "lie_down" in done.stdout and "sit" in done.stdout


def test_send_audio_file(voice_server: VoiceServer, clip: Callable[..., Path]) -> None:
    done = send(voice_server, "--audio", str(clip("turn left", "en")), "--language", "en", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["command"]["action"] == "turn_left"


def test_send_synthesized_speech(voice_server: VoiceServer, clip: Callable[..., Path]) -> None:
    clip("sta op", "nl")  # makes sure espeak-ng and sox are installed
    done = send(voice_server, "--say", "sta op", "--json")  # spoken in the server's language (nl)
    assert done.returncode == 0, done.stdout + done.stderr
    reply = json.loads(done.stdout)
    assert reply["transcript"].lower().startswith("sta op") and reply["command"]["action"] == "stand_up"


def test_send_needs_exactly_one_input(voice_server: VoiceServer) -> None:
    done = send(voice_server)
    assert done.returncode == 2 and "exactly one of --command, --audio or --say" in done.stderr


def test_send_to_nobody_says_so() -> None:
    done = run(jetfleet_cmd("voice", "send", "--jetson-url", f"http://127.0.0.1:{free_port()}", "--command", "x"))
    assert done.returncode == 2 and "cannot be reached" in done.stderr


def test_python_client(voice_server: VoiceServer, clip: Callable[..., Path]) -> None:
    with JetsonVoiceClient(voice_server.url) as client:
        assert client.send_command("sta op").command.action == "stand_up"  # type: ignore[union-attr]
        spoken = client.send_audio(clip("draai naar links", "nl"))
        assert spoken.command is not None and spoken.command.action == "turn_left"
        assert client.health().whisper_model == "base"
        assert client.status().command_count >= 2
        with pytest.raises(VoiceRequestError, match="command: String should have at least 1 character") as err:
            client.send_command("")
        assert err.value.status == 422
    with pytest.raises(VoiceServerUnavailable), JetsonVoiceClient(f"http://127.0.0.1:{free_port()}") as nobody:
        nobody.health()


def test_prepare_model_prints_the_verified_directory() -> None:
    done = run(jetfleet_cmd("voice", "prepare-model", "--cache-dir", str(MODEL_CACHE)))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(MODEL_CACHE / "whisper-base")


def _serve_fails(*args: str, **env: str) -> str:
    done = run(serve_cmd(free_port(), *args), timeout=120, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    return done.stderr


def test_serve_refuses_an_uncached_size_name_without_downloading(tmp_path: Path) -> None:
    message = _serve_fails("--whisper-model", "small", HF_HUB_CACHE=str(tmp_path / "hf"))
    assert "'small' is not cached on this machine" in message and "never downloads" in message


@pytest.mark.parametrize(("args", "expected"), [
    (["--model-dir", "/nonexistent/model"], "--model-dir"),
    (["--language", "de-DE"], "key '--language'"),
    (["--backend", "whisper-trt", "--language", "en-US"], "whisper_trt does not import"),
    (["--backend", "whisper-trt", "--language", "nl-NL"], "whisper_trt does not import"),
    (["--robot", "go2", "--network-interface", "nosuchnic0"], "no network interface 'nosuchnic0'"),
    (["--port", "0"], "--port"),
])
def test_serve_refuses_bad_flags_at_start(args: list[str], expected: str) -> None:
    assert expected in _serve_fails(*args)


def test_serve_go2_without_the_sdk_says_how_to_install_it() -> None:
    argv = serve_cmd(free_port(), robot="go2")
    code = ("import sys; sys.modules['unitree_sdk2py'] = None; sys.argv = ['jetfleet', *sys.argv[1:]];"
            " from jetfleet.cli import main; main()")
    done = run([sys.executable, "-c", code, *argv[3:]])
    assert done.returncode == 2
    assert "pip install '.[go2]'" in done.stderr and "--robot none" in done.stderr


def test_serve_refuses_cyclonedds_11_on_a_robot_network() -> None:
    pytest.importorskip("unitree_sdk2py")
    nics = [name for name, addrs in psutil.net_if_addrs().items()
            if name != "lo" and any(a.family.name == "AF_INET" for a in addrs)]
    if not nics:
        pytest.skip("no non-loopback IPv4 interface here")
    message = _serve_fails("--robot", "go2", "--network-interface", nics[0])
    assert "a Go2 runs CycloneDDS 0.10.2" in message and "--allow-dds-mismatch" in message


def test_record_and_send_without_a_microphone_says_why(voice_server: VoiceServer) -> None:
    done = run(jetfleet_cmd("voice", "record-and-send", "--jetson-url", voice_server.url, "--seconds", "1"))
    assert done.returncode == 2 and "microphone" in done.stderr
