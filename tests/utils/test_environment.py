"""utils.environment: every course setting is read one way (the environment, else a .env file), and
the .env file is found from the working directory upwards, else in the checkout."""

from __future__ import annotations

import pytest

from utils import environment
from utils.cache import cache_root
from utils.judge import choose_backend

KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "COURSE_JUDGE_BACKEND")


@pytest.fixture
def elsewhere(monkeypatch, tmp_path):
    """A working directory with no .env above it, and a stand-in checkout folder (its .env not yet written)."""
    checkout, cwd = tmp_path / "checkout", tmp_path / "elsewhere"
    checkout.mkdir()
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(environment, "CHECKOUT_DOTENV", checkout / ".env", raising=False)
    for name in [*KEYS, *environment.MEANINGS]:
        monkeypatch.delenv(name, raising=False)
    return checkout / ".env"


def test_a_script_started_outside_the_checkout_reads_the_checkouts_dotenv(elsewhere):
    assert choose_backend() == "local"
    elsewhere.write_text("OPENAI_API_KEY=sk-from-the-checkout\n")
    assert choose_backend() == "openai"
    assert environment.lookup("OPENAI_API_KEY").source == str(elsewhere)
    assert f".env: {elsewhere}" in environment.describe() and "sk-from" not in environment.describe()


def test_a_dotenv_above_the_working_directory_comes_before_the_checkouts(elsewhere, tmp_path):
    elsewhere.write_text("COURSE_JUDGE_MODEL=from-checkout\n")
    (tmp_path / ".env").write_text("COURSE_JUDGE_MODEL=from-above\n")
    assert environment.setting("COURSE_JUDGE_MODEL") == "from-above"


def test_every_course_setting_honours_the_dotenv_file(elsewhere, tmp_path, monkeypatch):
    course = [name for name in environment.MEANINGS if name.startswith("COURSE_")]
    elsewhere.write_text("".join(f"{name}=v-{name}\n" for name in course))
    assert {name: environment.setting(name) for name in course} == {name: f"v-{name}" for name in course}
    assert cache_root().name == "v-COURSE_CACHE_DIR"  # read through the accessor, not os.environ
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "from-env"))
    assert cache_root() == tmp_path / "from-env"  # the environment wins over the file


def test_an_empty_exported_value_counts_as_unset(elsewhere, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", "")
    found = environment.lookup("COURSE_CACHE_DIR")
    assert found.value is None and found.exported_empty and "exported empty" in str(found)
    assert cache_root().name == ".cache"  # the default, not the working directory


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [("utf-16-le", b"\xff\xfe"), ("utf-16-be", b"\xfe\xff"), ("utf-16-le", b""), ("utf-8", b"\xef\xbb\xbf")],
)
def test_a_dotenv_saved_as_utf16_or_with_a_bom_is_read(elsewhere, encoding, bom):
    # Windows PowerShell's `echo COURSE_JUDGE_MODEL=... > .env` writes UTF-16 with a BOM and CRLF line ends.
    elsewhere.write_bytes(bom + "COURSE_JUDGE_MODEL=judge-ü\r\nCOURSE_PROFILE=tiny\r\n".encode(encoding))
    assert environment.setting("COURSE_JUDGE_MODEL") == "judge-ü"
    assert environment.setting("COURSE_PROFILE") == "tiny"


def test_a_latin1_dotenv_is_read_and_said_so(elsewhere):
    elsewhere.write_bytes("COURSE_JUDGE_MODEL=caf\u00e9\n".encode("latin-1"))
    with pytest.warns(UserWarning, match=rf"{elsewhere.name}.*not UTF-8.*Latin-1"):
        assert environment.setting("COURSE_JUDGE_MODEL") == "café"
