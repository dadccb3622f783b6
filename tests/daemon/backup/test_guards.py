"""The guards on their own: names, sizes, content, the allow-list."""

from __future__ import annotations

from pathlib import Path

import pytest

from labmind.daemon.backup import DEFAULT_MAX_FILE_BYTES, Guards, HeldBack, secret_name_match

HELD = [
    ".env",
    ".ENV",
    ".env.local",
    ".env.production",
    "app/.env",
    "prod.env",
    "id_rsa",
    "home/.ssh/id_ed25519",
    "id_ecdsa",
    "id_dsa",
    "server.pem",
    "TLS.KEY",
    "cert.p12",
    "cert.pfx",
    "release.keystore",
    "release.jks",
    ".netrc",
    "_netrc",
    ".pgpass",
    "credentials.json",
    "gcp/credentials",
    "infra/prod.tfvars",
    ".npmrc",
    ".pypirc",
    "secrets.yaml",
    "conf/secrets.py",
    "home/.aws/credentials",
    ".docker/config.json",
    "kubeconfig",
    "vpn/office.ovpn",
]
PASSED = [
    ".env.example",
    ".env.sample",
    "app/.env.template",
    "id_rsa.pub",
    "id_ed25519.pub",
    "environment.yml",
    "keys.py",
    "docker/config.json",
    "aws/config",
    "train.py",
    "my_secrets_notes.md",
    "pem.txt",
]


@pytest.mark.parametrize("path", HELD)
def test_secret_file_names_are_denied(path: str) -> None:
    assert secret_name_match(path) is not None


@pytest.mark.parametrize("path", PASSED)
def test_ordinary_and_template_names_pass(path: str) -> None:
    assert secret_name_match(path) is None


def write(folder: Path, name: str, content: str | bytes) -> Path:
    file = folder / name
    file.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        file.write_bytes(content)
    else:
        file.write_text(content)
    return file


def test_content_scan_finds_planted_secrets_and_never_echoes_them(tmp_path: Path) -> None:
    guards = Guards()
    planted = {
        "aws.py": 'KEY = "AKIAIOSFODNN7EXAMPLE"\n',
        "gh.sh": "export GITHUB_TOKEN=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\n",
        "key.txt": "x\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n",
        "slack.md": "hook: https://hooks.slack.com/services/T0000000/B0000000/XXXXXXXXXXXXXXXXXXXXXXXX\n",
    }
    for name, content in planted.items():
        held = guards.check(name, write(tmp_path, name, content))
        assert held is not None, name
        assert held.reason.startswith("looks like a secret: ")
        assert content.strip().split()[-1] not in str(held)
    assert str(guards.check("key.txt", tmp_path / "key.txt")) == (
        "key.txt: looks like a secret: Private Key on line 2"
    )


def test_ordinary_code_and_binary_files_pass(tmp_path: Path) -> None:
    guards = Guards()
    code = "import torch\n\nlr = 3e-4\nmodel = torch.nn.Linear(4, 2)\n"
    assert guards.check("train.py", write(tmp_path, "train.py", code)) is None
    blob = b"\0\x01AKIAIOSFODNN7EXAMPLE\0" * 10
    assert guards.check("weights.bin", write(tmp_path, "weights.bin", blob)) is None


def test_size_cap_and_scan_limit(tmp_path: Path) -> None:
    assert Guards().max_file_bytes == DEFAULT_MAX_FILE_BYTES == 50 * 1024 * 1024
    big = write(tmp_path, "big.csv", "1,2,3\n" * 400_000)
    held = Guards(max_file_bytes=1024 * 1024).check("data/big.csv", big)
    assert held == HeldBack("data/big.csv", "too large (2.3 MB > 1.0 MB)")
    secret = write(tmp_path, "late.txt", "x" * 5000 + "\nAKIAIOSFODNN7EXAMPLE\n")
    assert Guards(max_scan_bytes=1000).check("late.txt", secret) is None
    assert Guards().check("late.txt", secret) is not None


def test_the_allow_list_overrides_names_size_and_content(tmp_path: Path) -> None:
    guards = Guards(allow=(".env", "tests/fixtures/", "*.pem"), max_file_bytes=10)
    env = write(tmp_path, ".env", "DEBUG=1\n")
    fake = write(tmp_path, "fake.txt", "AKIAIOSFODNN7EXAMPLE\n")
    assert guards.check(".env", env) is None
    assert guards.check("sub/.env", env) is None
    assert guards.check("tests/fixtures/aws.txt", fake) is None
    assert guards.check("certs/ca.pem", fake) is None
    assert guards.check("src/aws.txt", fake) is not None
    assert guards.check(".env.local", env) is not None


def test_a_custom_scanner_plugs_in(tmp_path: Path) -> None:
    class Everything:
        def find_secret(self, file: Path) -> str | None:
            return f"custom rule on {file.name}"

    file = write(tmp_path, "notes.md", "nothing\n")
    assert Guards(scanner=Everything()).check("notes.md", file) == HeldBack(
        "notes.md", "looks like a secret: custom rule on notes.md"
    )
