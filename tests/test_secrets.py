"""secrets.py: sops detection and decryption into a private temp folder, with real sops and age."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import stat
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from hubtasks.config.jsonnet import RENDERER
from hubtasks.deploying.documents import _render
from hubtasks.dev import envtest
from hubtasks.helm import ReleaseSpec, probe, run_helm, template_argv
from hubtasks.model import HubtasksError
from hubtasks.secrets import (
    REDACTED,
    Redactor,
    decrypted_values,
    file_secrets,
    is_secret_path,
    is_sops_encrypted,
    redacted_leaves,
    secret_forms,
    trie_pattern,
)

SECRET_VALUES = {"hub": {"config": {"token": "s3cr3t-token-value"}}, "greeting": "psst"}


@pytest.fixture(scope="session")
def age_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, str]]:
    """Two age keys, `good` and `other`: name -> (key file, public recipient)."""
    keygen = envtest.ensure_age()
    folder = tmp_path_factory.mktemp("age")
    keys = {}
    for name in ("good", "other"):
        key = folder / f"{name}.txt"
        subprocess.run([str(keygen), "-o", str(key)], check=True, capture_output=True)
        public = subprocess.run([str(keygen), "-y", str(key)], check=True, capture_output=True,
                                text=True).stdout.strip()
        keys[name] = (key, public)
    return keys


@pytest.fixture
def sops_env(age_keys: dict[str, tuple[Path, str]]) -> dict[str, str]:
    """An env whose age key decrypts files encrypted for the `good` recipient."""
    return {**os.environ, "SOPS_AGE_KEY_FILE": str(age_keys["good"][0])}


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where tempfile makes folders during the test, to check nothing is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def encrypt(path: Path, recipient: str, sops: Path) -> Path:
    """Encrypt `path` in place for `recipient` (run in its folder: no .sops.yaml applies)."""
    subprocess.run([str(sops), "--encrypt", "--age", recipient, "--in-place", path.name],
                   cwd=path.parent, check=True, capture_output=True)
    return path


def write(path: Path, doc: object) -> Path:
    text = json.dumps(doc) if path.suffix == ".json" else yaml.safe_dump(doc)
    path.write_text(text)
    return path


@pytest.fixture
def values(tmp_path: Path, sops: Path, age_keys: dict[str, tuple[Path, str]]) -> list[Path]:
    """plain, encrypted YAML, plain, encrypted JSON values files, in that order."""
    recipient = age_keys["good"][1]
    return [
        write(tmp_path / "common.values.yaml", {"greeting": "hi"}),
        encrypt(write(tmp_path / "enc-hub.secret.values.yaml", SECRET_VALUES), recipient, sops),
        write(tmp_path / "hub.values.yaml", {"replicas": 2}),
        encrypt(write(tmp_path / "enc-hub.secret.json", SECRET_VALUES), recipient, sops),
    ]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("name", "secret"), [
    ("enc-prod.secret.values.yaml", True), ("secrets.yaml", True), ("SECRET.json", True),
    ("prod.values.yaml", False), ("enc-prod.values.yaml", False),
], ids=["2i2c", "plural", "upper", "plain", "enc-only"])
def test_is_secret_path(name: str, secret: bool) -> None:
    assert is_secret_path(Path("config/clusters/leap") / name) is secret


@pytest.mark.parametrize(("name", "content", "encrypted"), [
    ("a.yaml", "greeting: hi\n", False),
    ("a.yaml", "sops: true\n", False),
    ("a.yaml", "sops: {version: 3.11.0}\n", False),
    ("a.yaml", "key: [unclosed\nsops: {mac: x, version: y}\n", False),
    ("a.yaml", "- sops\n- mac\n", False),
    ("a.json", '{"sops": {"mac": "x", "version": "3"}}', True),
    ("a.yaml", "a: ENC[x]\nsops:\n  mac: ENC[y]\n  version: 3.11.0\n", True),
    ("a.bin", "\udcff", False),
], ids=["plain", "sops-scalar", "no-mac", "broken", "list", "json", "yaml", "binary"])
def test_is_sops_encrypted_shapes(tmp_path: Path, name: str, content: str,
                                  encrypted: bool) -> None:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8", "surrogateescape"))
    assert is_sops_encrypted(path) is encrypted


def test_is_sops_encrypted_real_files_and_missing(values: list[Path], tmp_path: Path) -> None:
    assert [is_sops_encrypted(p) for p in values] == [False, True, False, True]
    assert not is_sops_encrypted(tmp_path / "missing.yaml")


def test_decrypts_in_order_into_a_private_folder(values: list[Path], sops: Path,
                                                 sops_env: dict[str, str],
                                                 private_tmp: Path) -> None:
    with decrypted_values(values, sops=sops, env=sops_env) as out:
        assert (out[0], out[2]) == (values[0], values[2])
        folder = out[1].parent
        assert folder.parent == private_tmp and out[3].parent == folder
        assert mode(folder) == 0o700
        assert [mode(out[1]), mode(out[3])] == [0o600, 0o600]
        assert out[1].name.endswith("enc-hub.secret.values.yaml")
        assert out[3].name.endswith("enc-hub.secret.json")
        assert yaml.safe_load(out[1].read_text()) == SECRET_VALUES
        assert json.loads(out[3].read_text()) == SECRET_VALUES
    assert not folder.exists()
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt], ids=["error", "ctrl-c"])
def test_decrypted_files_are_removed_when_the_block_fails(
        values: list[Path], sops: Path, sops_env: dict[str, str], private_tmp: Path,
        error: type[BaseException]) -> None:
    with pytest.raises(error), decrypted_values(values, sops=sops, env=sops_env) as out:
        assert out[1].is_file()
        raise error("stop")
    assert list(private_tmp.iterdir()) == []


def test_plain_files_only_need_no_folder(values: list[Path], private_tmp: Path) -> None:
    plain = [values[0], values[2]]
    with decrypted_values(plain, sops=Path("/nonexistent/sops"), env={}) as out:
        assert out == tuple(plain)
    assert list(private_tmp.iterdir()) == []


def test_encrypted_file_without_secret_in_its_name_is_decrypted_too(
        tmp_path: Path, sops: Path, sops_env: dict[str, str],
        age_keys: dict[str, tuple[Path, str]]) -> None:
    kubeconfig = encrypt(write(tmp_path / "kubeconfig.yaml", {"apiVersion": "v1"}),
                         age_keys["good"][1], sops)
    with decrypted_values([kubeconfig], sops=sops, env=sops_env) as (plain,):
        assert yaml.safe_load(plain.read_text()) == {"apiVersion": "v1"}


def test_refuses_an_unencrypted_secret_file(tmp_path: Path, sops: Path,
                                            sops_env: dict[str, str], private_tmp: Path) -> None:
    path = write(tmp_path / "enc-hub.secret.values.yaml", SECRET_VALUES)
    with pytest.raises(HubtasksError) as caught, \
            decrypted_values([path], sops=sops, env=sops_env):
        pass
    assert str(path) in str(caught.value)
    assert f"sops --encrypt --in-place {path}" in str(caught.value)
    assert list(private_tmp.iterdir()) == []


def test_refuses_a_missing_secret_file(tmp_path: Path, sops: Path,
                                       sops_env: dict[str, str]) -> None:
    path = tmp_path / "enc-gone.secret.values.yaml"
    with pytest.raises(HubtasksError, match="secret values file not found"), \
            decrypted_values([path], sops=sops, env=sops_env):
        pass


def test_sops_failure_names_the_file_without_plaintext(
        values: list[Path], sops: Path, age_keys: dict[str, tuple[Path, str]],
        private_tmp: Path) -> None:
    wrong_key = {**os.environ, "SOPS_AGE_KEY_FILE": str(age_keys["other"][0])}
    with pytest.raises(HubtasksError) as caught, \
            decrypted_values(values, sops=sops, env=wrong_key):
        pass
    message = str(caught.value)
    assert message.startswith(f"{values[1]}: `sops --decrypt` failed")
    assert "s3cr3t-token-value" not in message
    assert list(private_tmp.iterdir()) == []


def test_missing_sops_binary(values: list[Path], sops_env: dict[str, str]) -> None:
    with pytest.raises(HubtasksError, match="cannot run sops"), \
            decrypted_values(values, sops=Path("/nonexistent/sops"), env=sops_env):
        pass


@pytest.fixture
def hub_chart(tmp_path: Path) -> Path:
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: hub\nversion: 0.1.0\n")
    (chart / "templates" / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: hub}\n"
        "stringData: {token: {{ .Values.hub.config.token | quote }}}\n")
    return chart


def test_helm_reads_the_decrypted_files(helm: Path, hub_chart: Path, values: list[Path],
                                        sops: Path, sops_env: dict[str, str]) -> None:
    with decrypted_values(values, sops=sops, env=sops_env) as files:
        spec = ReleaseSpec(release="hub", namespace="hub", chart_dir=hub_chart,
                           values_files=files)
        run = run_helm(template_argv(probe(helm, env=os.environ), spec), env=sops_env,
                       timeout=120, retries=0, redactor=Redactor(["s3cr3t-token-value"]))
    assert run, run.error
    assert 'token: "***"' in run.output


@pytest.fixture(autouse=True)
def _no_leftover_age_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys from the developer's shell must not make a wrong-key test pass by accident."""
    for name in ("SOPS_AGE_KEY", "SOPS_AGE_KEY_CMD"):
        monkeypatch.delenv(name, raising=False)


# ---------------------------------------------------------------------------- redaction


def test_redactor_hides_secrets_and_secret_flags() -> None:
    redact = Redactor(["s3cr3t-value", "s3cr3t", "ab"])
    assert redact("token=s3cr3t-value and s3cr3t") == "token=*** and ***"
    assert redact("ab stays: too short to be told from ordinary text") == \
        "ab stays: too short to be told from ordinary text"
    argv = ["helm", "upgrade", "--set", "a=b", "--kube-token=tok", "--password", "pw", "-f",
            "/v/s3cr3t.yaml"]
    assert Redactor(["s3cr3t"]).argv(argv) == ["helm", "upgrade", "--set", "***",
                                               "--kube-token=***", "--password", "***", "-f",
                                               "/v/***.yaml"]


NASTY = {
    "pem": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nq1w2e3r4t5y6u7i8\n"
           "-----END PRIVATE KEY-----\n",
    "quote": 'Bad"Label!Secret',
    "backslash": "C:\\path\\to\\s3cret",
    "unicode": "pässwörd-ünïcode-ß",
    "json": '{"client_secret": "abc-123-xyz"}',
    "single-quote": "it's-a-secret",
}


@pytest.mark.parametrize("value", NASTY.values(), ids=NASTY.keys())
def test_every_form_of_a_secret_is_redacted(value: str) -> None:
    import base64
    import json as json_module

    redact = Redactor([value])
    forms = {
        "raw": value,
        "json-escaped": json_module.dumps(value)[1:-1],
        "ascii-escaped": json_module.dumps(value, ensure_ascii=True)[1:-1],
        "yaml-single-quoted": value.replace("'", "''"),
        "base64": base64.b64encode(value.encode()).decode(),
        "base64-url": base64.urlsafe_b64encode(value.encode()).decode(),
        "base64-inside-a-blob": base64.b64encode(b"prefix:" + value.encode() + b":suffix")
        .decode(),
    }
    for name, form in forms.items():
        text = f"Error: Invalid value: {form} (more text)"
        assert form not in redact(text), name
        assert REDACTED in redact(text), name
    for line in value.splitlines():
        if len(line.strip()) >= 4:
            assert line.strip() not in redact(f"echo: {line}")


def test_secret_forms_include_each_line_of_a_multi_line_value() -> None:
    forms = secret_forms("line-one-x\nline-two-y")
    assert {"line-one-x", "line-two-y"} <= forms


def test_file_secrets_walk_lists_and_mappings(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: {b: [listed-secret, {c: nested-secret}]}\nflag: true\nn: 12345\n")
    assert file_secrets([path]) == {"listed-secret", "nested-secret", "12345"}


# ---------------------------------------------------------------------------- more forms


def _leaks(redact: Redactor, form: str) -> bool:
    return form in redact(f"Error: {form} (more)")


URL_VALUE = "s3cr3t pa$$ w0rd/x"


@pytest.mark.parametrize("form", [
    urllib.parse.quote(URL_VALUE, safe=""), urllib.parse.quote(URL_VALUE),
    urllib.parse.quote_plus(URL_VALUE), "s3cr3t+pa%24%24+w0rd%2Fx", "s3cr3t+pa%24%24+w0rd%2fx",
    urllib.parse.quote(URL_VALUE, safe="").lower().replace("s3cr3t%20pa", "s3cr3t%20pa"),
], ids=["quote-safe-none", "quote", "quote_plus", "go-urlquery", "lower-hex", "lower-quote"])
def test_url_encoded_forms(form: str) -> None:
    assert not _leaks(Redactor([URL_VALUE]), form)


GO_VALUE = 'a&b<c>d"e\\f-\u2028-secret'


def _go_json(value: str) -> str:
    return (json.dumps(value, ensure_ascii=False)[1:-1].replace("&", "\\u0026")
            .replace("<", "\\u003c").replace(">", "\\u003e").replace("\u2028", "\\u2028"))


@pytest.mark.parametrize(("value", "form"), [
    (GO_VALUE, _go_json(GO_VALUE)),
    ('pa"ss\\word', 'pa\\\\\\"ss\\\\\\\\word'),  # toJson | quote
    ('pa"ss\\word', json.dumps(json.dumps('pa"ss\\word'))[3:-3]),
    (GO_VALUE, json.dumps(_go_json(GO_VALUE))[1:-1]),
    ("tab\there\x01\x7f-secret", "tab\\there\\x01\\x7f-secret"),  # Go's %q (sprig quote)
], ids=["go-json-html", "tojson-quote", "json-twice", "go-json-twice", "go-quote"])
def test_go_json_and_twice_escaped_forms(value: str, form: str) -> None:
    assert not _leaks(Redactor([value]), form)


@pytest.mark.parametrize("value", ["pässwörd", "Ж9w-secret", "nb\xa0sp-secret", "emoji😀x",
                                   "line\u2028sep-secret", 'q"b\\-secret'])
def test_pyyaml_double_quoted_escapes(value: str) -> None:
    redact = Redactor([value])
    for dumped in (yaml.safe_dump({"k": value}), yaml.safe_dump({"k": value}, allow_unicode=True,
                                                                default_style='"')):
        inner = dumped.split('"k": ', 1)[-1].split("k: ", 1)[-1].strip()
        assert inner.strip('"') not in redact(dumped), dumped
        assert REDACTED in redact(dumped)
    assert "p\\xE4ssw\\xF6rd" not in Redactor(["pässwörd"])('k: "p\\xE4ssw\\xF6rd"')


LONG = "0123456789-long-secret-value-abcdefghij-" * 6


def test_mime_lines_of_a_value() -> None:
    redact = Redactor([LONG])
    lines = base64.encodebytes(LONG.encode()).decode().splitlines()
    assert len(lines) > 2
    for line in lines:
        assert redact(line) == REDACTED, line


def _pure_span(pre: int, size: int) -> tuple[int, int]:
    """The characters of a blob's base64 that hold only the secret's bits."""
    return -(-pre * 8 // 6), (pre + size) * 8 // 6


@pytest.mark.parametrize("width", [76, 64])
@pytest.mark.parametrize("secret", [LONG, "short-secret-val", "ünï-" * 8])
def test_wrapped_base64_of_a_file_at_every_alignment(width: int, secret: str) -> None:
    """A whole file base64-encoded and wrapped: at any offset (3 byte alignments, every line
    phase) no line keeps 7 characters that encode only the secret; other lines stay."""
    redact, raw = Redactor([secret]), secret.encode()
    rng = random.Random(width)
    for pre_len in range(70):
        for post_len in (0, 1, 2, 40):
            blob = rng.randbytes(pre_len) + raw + rng.randbytes(post_len)
            full = base64.b64encode(blob).decode()
            first, end = _pure_span(pre_len, len(raw))
            for start in range(0, len(full), width):
                line, out = full[start:start + width], redact(full[start:start + width])
                piece = full[max(first, start):min(end, start + width)]
                assert not any(piece[i:i + 7] in out for i in range(len(piece) - 6)), \
                    (pre_len, post_len, line, out)
                if not piece:
                    assert out == line
    assert base64.encodebytes(b"x" * 300).decode() == \
        redact(base64.encodebytes(b"x" * 300).decode())


@pytest.mark.parametrize("indent", [0, 3, 10, 24])
def test_a_value_folded_by_yaml_is_redacted_line_by_line(indent: int) -> None:
    """go-yaml (helm's toYaml) and PyYAML fold a long value at spaces past column 80; job logs
    are redacted line by line, so every line's piece must go."""
    value = "correct horse battery staple it's " * 9 + "the-end"
    doc: object = {"key": value}
    for _ in range(indent):
        doc = {"a": doc}
    redact = Redactor([value])
    dumped = yaml.safe_dump(doc, width=80)
    assert dumped.count("\n") > 3
    out = "".join(redact(line) for line in dumped.splitlines(keepends=True))
    assert "horse" not in out and "the-end" not in out and "staple" not in out, out


def test_redactor_stays_fast_with_many_forms() -> None:
    secrets = [f"token-{i:03d}-" + "x9Y" * 20 for i in range(40)] + [LONG, GO_VALUE, NASTY["pem"]]
    redact = Redactor(secrets)
    line = "  serviceAccountName: ordinary-text configuration value 12345 abcdefghijklmnop\n"
    started = time.perf_counter()
    for _ in range(2000):
        redact(line)
    assert time.perf_counter() - started < 2.0  # ~20us a line; an alternation of all: ~10x


def test_trie_pattern_prefers_the_longest_form() -> None:
    pattern = re.compile(trie_pattern(["abc", "abcdef", "abd", "x", "abcde"]))
    assert pattern.sub("*", "abcdefg abcdz abdz abz x") == "*g *dz *z abz *"


def test_redacted_leaves_hides_every_scalar() -> None:
    doc = {"a": {"short": "abc", "octal": 511, "flag": True, "gone": None},
           "list": ["x", 1.5, {"b": "pässwörd"}]}
    assert redacted_leaves(doc) == {"a": {"short": REDACTED, "octal": REDACTED,
                                          "flag": REDACTED, "gone": None},
                                    "list": [REDACTED, REDACTED, {"b": REDACTED}]}


def test_words_inside_a_long_value_are_not_hidden_everywhere() -> None:
    """Only pieces a fold can make are redacted: a middle line of a fold is long, so single
    words from inside a value (members, this, must) stay readable in other text."""
    redact = Redactor(["Users of this hub must be members of the org and pay attention"])
    assert redact("members of this must read the org chart") == \
        "members of this must read the org chart"
    assert redact("the horse ran; battery low") == "the horse ran; battery low"


# ---------------------------------------------------------------------------- jsonnet errors


def test_a_decrypted_jsonnet_documents_error_never_quotes_its_values(tmp_path: Path) -> None:
    """jsonnet quotes values in its messages (`Assertion failed. "s3cret" != "x"`)."""
    path = tmp_path / "enc-hub.secret.jsonnet"
    source = 'local token = "hunter2-SECRET";\n{ a: std.assertEqual(token, "x") }\n'
    with pytest.raises(HubtasksError) as caught:
        _render(RENDERER, path, {}, rel="enc-hub.secret.jsonnet", source=source, hide=set())
    message = str(caught.value)
    assert "hunter2" not in message
    assert message.startswith("enc-hub.secret.jsonnet: jsonnet render failed (at ")
    assert "enc-hub.secret.jsonnet:2:6-33" in message and "is not shown" in message


def test_a_jsonnet_error_is_redacted_of_a_secret_domain(tmp_path: Path) -> None:
    path = tmp_path / "hub.jsonnet"
    path.write_text('{ a: std.parseInt(std.extVar("DOMAIN")) }\n')
    with pytest.raises(HubtasksError) as caught:
        _render(RENDERER, path, {"DOMAIN": "hidden.example.org"}, rel="hub.jsonnet",
                source=None, hide={"hidden.example.org"})
    message = str(caught.value)
    assert "hidden.example.org" not in message and "*** is not a base 10 integer" in message


@pytest.mark.parametrize(("text", "hidden"), [
    ("TOKEN=abc123xyz\nOTHER = second-value\n", {"abc123xyz", "second-value"}),
    ("[auth]\npassword: p4ssw0rd-x\n", {"p4ssw0rd-x"}),
    ("local t = 'tok-en-123';\n{ a: t }\n", {"local t = 'tok-en-123';"}),
    ("just-one-secret-line\n", {"just-one-secret-line"}),
], ids=["dotenv", "ini", "jsonnet", "scalar"])
def test_a_decrypted_file_that_is_no_mapping_is_still_redacted(text: str, hidden: set[str],
                                                              tmp_path: Path) -> None:
    path = tmp_path / "enc-x.secret.env"
    path.write_text(text)
    found = file_secrets([path])
    assert hidden <= found, found


def test_an_upper_or_lower_cased_secret_is_redacted() -> None:
    redact = Redactor({"d4839cc21e7581d5c1d515"})
    assert redact("upper=D4839CC21E7581D5C1D515 lower=d4839cc21e7581d5c1d515") == \
        "upper=*** lower=***"


def test_only_file_places_of_a_decrypted_jsonnet_error_are_kept(tmp_path: Path) -> None:
    """A computed value shaped like a place (`...:5432:1`) is no place: it stays hidden."""
    path = tmp_path / "x.jsonnet"
    source = ('local host = "postgres://app:Hunter2pass@db.internal";\n'
              '{ a: error host + ":5432:1" }\n')
    with pytest.raises(HubtasksError) as caught:
        _render(RENDERER, path, {}, rel="x.jsonnet", source=source, hide=set())
    message = str(caught.value)
    assert "Hunter2pass" not in message and "x.jsonnet:2:" in message, message
