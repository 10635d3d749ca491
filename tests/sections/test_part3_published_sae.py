"""Section 3's published-SAE path (the ``full`` profile) without a network.

- With a local copy in the Hugging Face cache, the full profile's loading code reads it through the
  same sae-lens call it makes for the real release (``SAE.from_pretrained``), offline.
- With the hub unreachable (offline mode, or an endpoint that refuses connections) and no local copy,
  it prints a message naming the release and the block, how to fetch it, and the fallback, then
  falls back to the small SAE trained in the section, announced as such: no stack trace.

The hub client's settings are patched on ``huggingface_hub.constants`` with ``monkeypatch`` (read at
call time), so no later test sees them.
"""

from __future__ import annotations

import types

import pytest
import torch

from part3_contrastive.sae_reading import PUBLISHED, load_or_train_sae
from tests.published_sae import place_published_sae
from utils.profiles import PROFILES

FULL = PROFILES["full"]
MODEL = FULL.models.part3
RELEASE = PUBLISHED[MODEL][0]
SAE_ID = PUBLISHED[MODEL][1].format(layer=FULL.steer_layer)
D_IN = 64  # the tiny stand-in's width


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """An empty local Hugging Face cache, the hub client in offline mode (``HF_HUB_OFFLINE=1``)."""
    import huggingface_hub.constants as constants

    cache = tmp_path / "hf-hub"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


@pytest.fixture(autouse=True)
def one_thread():
    """Torch on one thread while the fallback trains its small SAE (two threads on a busy 2-core machine
    made 400 steps take minutes instead of seconds); restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def token_acts(n: int = 200) -> torch.Tensor:
    return torch.randn(n, D_IN, generator=torch.Generator().manual_seed(1)) * 3


def test_full_profile_reads_the_published_sae_from_the_local_cache_through_sae_lens(hub, tmp_path, monkeypatch):
    import sae_lens

    written = place_published_sae(hub, RELEASE, SAE_ID, d_in=D_IN, d_sae=4 * D_IN)
    calls = []
    real = sae_lens.SAE.from_pretrained.__func__
    monkeypatch.setattr(
        sae_lens.SAE, "from_pretrained", classmethod(lambda cls, *a, **kw: calls.append(a) or real(cls, *a, **kw))
    )
    sae, info = load_or_train_sae(FULL.steer_layer, token_acts(), FULL, tmp_path / "trained.pt", MODEL)
    assert calls == [(RELEASE, SAE_ID)], f"the full profile's SAE step called SAE.from_pretrained with {calls}"
    assert info["source"] == f"sae-lens release {RELEASE!r}, id {SAE_ID!r}", info["source"]
    assert (info["d_in"], info["d_sae"]) == (D_IN, 4 * D_IN)
    torch.testing.assert_close(sae.W_dec.detach(), written["decoder.weight"].T)
    torch.testing.assert_close(sae.W_enc.detach(), written["encoder.weight"].T)
    assert not (tmp_path / "trained.pt").exists(), "a small SAE was trained although the published one loaded"


def unreachable_endpoint(monkeypatch):
    """The hub client online but pointed at a local port that refuses connections, without its retry waits."""
    import socket

    import huggingface_hub.constants as constants
    from huggingface_hub.utils import _http

    with socket.socket() as s:  # a port nobody listens on (bound, then closed)
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    fast = types.SimpleNamespace(**{name: getattr(_http.time, name) for name in dir(_http.time) if name[0] != "_"})
    fast.sleep = lambda seconds: None
    monkeypatch.setattr(_http, "time", fast)
    return endpoint


@pytest.fixture
def captive_portal(monkeypatch):
    """The hub client online, but every request answered 200 with an HTML login page (a hotel's or a train's
    wifi before sign-in), without its retry waits."""
    import http.server
    import threading

    class Portal(http.server.BaseHTTPRequestHandler):
        def _page(self, body: bool) -> None:
            page = b"<html><body>Please sign in to use the wifi</body></html>"
            self.server.hits += 1  # type: ignore[attr-defined]
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            if body:
                self.wfile.write(page)

        def do_GET(self):  # noqa: N802 - http.server's name
            self._page(body=True)

        def do_HEAD(self):  # noqa: N802
            self._page(body=False)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    server.hits = 0  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = unreachable_endpoint(monkeypatch)  # the same patches, then pointed at the portal
    import huggingface_hub.constants as constants

    address = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", address)
    monkeypatch.setattr(
        constants, "HUGGINGFACE_CO_URL_TEMPLATE", constants.HUGGINGFACE_CO_URL_TEMPLATE.replace(endpoint, address)
    )
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("network", ["offline mode", "unreachable hub", "captive portal"])
def test_full_profile_without_network_or_local_copy_falls_back_with_a_clear_message(
    network, hub, tmp_path, monkeypatch, capsys, request
):
    if network == "unreachable hub":
        unreachable_endpoint(monkeypatch)
    portal = request.getfixturevalue("captive_portal") if network == "captive portal" else None
    sae, info = load_or_train_sae(FULL.steer_layer, token_acts(), FULL, tmp_path / "trained.pt", MODEL)
    out = capsys.readouterr().out
    assert RELEASE in out and SAE_ID in out, f"the message does not name the release and id:\n{out}"
    assert f"block {FULL.steer_layer}" in out, f"the message does not name the block:\n{out}"
    assert f"hf download andyrdt/saes-qwen2.5-7b-instruct --include 'resid_post_layer_{FULL.steer_layer}/" in out, out
    assert "FALLBACK" in out and "trains a small SAE here" in out, f"the message does not say the fallback:\n{out}"
    assert "Traceback" not in out
    assert portal is None or portal.hits > 0, "the hub client never reached the captive portal"
    # The fallback is the section's trained SAE, and its description says so.
    assert info["source"].startswith("a small SAE trained here"), info["source"]
    assert f"fallback: the published SAE {RELEASE!r}" in info["source"], info["source"]
    assert (tmp_path / "trained.pt").exists()
    assert (info["d_in"], info["d_sae"]) == (D_IN, 4 * D_IN)
    assert type(sae).__name__ == "StandardSAE"
