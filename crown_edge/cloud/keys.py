"""Where the Order API's keys and token secrets come from (environment, config, files).

In order, for API keys: ``CROWN_API_KEY`` when set (tools and tests rely on it), else the
config's ``[api] keys`` / ``key_file``, else the systemd credential ``api-key``
(``LoadCredential=api-key:/etc/crown-edge-cloud/api-key`` puts it in
``$CREDENTIALS_DIRECTORY``). Token secrets: the config's ``[api] token_secrets`` /
``token_secret_file``, else the credential ``token-secret``. Files hold one value per line (the
first secret signs, every one verifies; see :mod:`crown_edge.cloud.auth`); blank lines and
``#`` comments are skipped. ``crown-edge up`` keeps generated ones in its workdir, mode 0600.

Nothing here logs a value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from crown_edge.cloud.auth import new_secret
from crown_edge.embedded.pki import write_private
from crown_edge.errors import ConfigError

ENV_API_KEY = "CROWN_API_KEY"
CREDENTIAL_API_KEY = "api-key"
CREDENTIAL_TOKEN_SECRET = "token-secret"


def read_values(path: Path, section: str = "api", key: str = "") -> tuple[str, ...]:
    """The non-blank, non-comment lines of a key or secret file."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise ConfigError(section, key, f"cannot read {path}: {exc.strerror}") from exc
    return tuple(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def credential(name: str, env: Mapping[str, str]) -> tuple[str, ...]:
    """Values of the systemd credential ``name``; () when there is none."""
    directory = env.get("CREDENTIALS_DIRECTORY")
    if not directory:
        return ()
    path = Path(directory) / name
    if not path.is_file():
        return ()
    return read_values(path, "api", f"$CREDENTIALS_DIRECTORY/{name}")


def api_keys(configured: tuple[str, ...], env: Mapping[str, str]) -> tuple[str, ...]:
    """The API keys in force (module docstring for the order)."""
    from_env = env.get(ENV_API_KEY, "").strip()
    if from_env:
        return (from_env,)
    return configured or credential(CREDENTIAL_API_KEY, env)


def token_secrets(configured: tuple[str, ...], env: Mapping[str, str]) -> tuple[str, ...]:
    """The token secrets in force (module docstring for the order)."""
    return configured or credential(CREDENTIAL_TOKEN_SECRET, env)


def local_secret(path: Path) -> str:
    """The first value in ``path``, created (random, mode 0600) when the file does not exist."""
    if path.exists():
        values = read_values(path, "up", path.name)
        if values:
            return values[0]
    value = new_secret()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, (value + "\n").encode())
    return value


def environ() -> Mapping[str, str]:
    """The process environment (a seam for tests)."""
    return os.environ
