"""`chatbus token`: signing secret lookup and the claims of the minted JWT."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import jwt
import pytest
from chatbus_cli.main import app
from chatbus_cli.settings import CliSettings
from chatbus_cli.tokens import ensure_secret, read_secret, secret_file
from typer.testing import CliRunner

SECRET = "a-test-secret-that-is-long-enough-for-hs256"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No CHATBUS_JWT_SECRET from the developer's shell, no .env from the repo.
    monkeypatch.delenv("CHATBUS_JWT_SECRET", raising=False)
    monkeypatch.chdir(tmp_path)


def _decode(token: str, secret: str = SECRET) -> dict[str, object]:
    claims: dict[str, object] = jwt.decode(token, secret, algorithms=["HS256"])
    return claims


def test_token_from_environment_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBUS_JWT_SECRET", SECRET)
    before = int(time.time())
    result = CliRunner().invoke(app, ["token", "--user", "alice"])
    assert result.exit_code == 0, result.output
    claims = _decode(result.stdout.strip())
    assert claims["sub"] == "alice"
    assert claims["role"] == "user"
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert before <= claims["iat"] <= int(time.time())
    assert claims["exp"] - claims["iat"] == 24 * 3600


def test_token_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBUS_JWT_SECRET", SECRET)
    result = CliRunner().invoke(
        app, ["token", "--user", "bob", "--role", "admin", "--ttl-hours", "0.5"]
    )
    assert result.exit_code == 0, result.output
    claims = _decode(result.stdout.strip())
    assert claims["sub"] == "bob"
    assert claims["role"] == "admin"
    assert isinstance(claims["iat"], int) and isinstance(claims["exp"], int)
    assert claims["exp"] - claims["iat"] == 1800


def test_token_from_data_dir_secret_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    secret_file(data_dir).write_text(SECRET + "\n")
    result = CliRunner().invoke(app, ["token", "--user", "carol", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    assert _decode(result.stdout.strip())["sub"] == "carol"


def test_token_reads_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"CHATBUS_JWT_SECRET={SECRET}\n")
    result = CliRunner().invoke(app, ["token", "--user", "dora"])
    assert result.exit_code == 0, result.output
    assert _decode(result.stdout.strip())["sub"] == "dora"


def test_missing_secret_fails_with_a_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["token", "--user", "alice", "--data-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "CHATBUS_JWT_SECRET" in result.output
    assert str(tmp_path / "jwt-secret") in result.output
    assert "Traceback" not in result.output


def test_non_positive_ttl_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBUS_JWT_SECRET", SECRET)
    result = CliRunner().invoke(app, ["token", "--user", "alice", "--ttl-hours", "0"])
    assert result.exit_code == 2
    assert "--ttl-hours" in result.output


def test_ensure_secret_creates_a_private_file_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "new" / "dir"
    first = ensure_secret(CliSettings(), data_dir)
    path = secret_file(data_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 32
    assert ensure_secret(CliSettings(), data_dir) == first
    assert read_secret(CliSettings(), data_dir) == first


def test_environment_secret_wins_and_creates_no_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CHATBUS_JWT_SECRET", SECRET)
    assert ensure_secret(CliSettings(), tmp_path / "data") == SECRET
    assert not secret_file(tmp_path / "data").exists()
