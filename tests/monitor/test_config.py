"""Config loading: the shipped config is valid, broken ones give every error with path and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from monitor.cli import main
from monitor.config import ConfigError, load_config, loader, parse_config
from tests.conftest import PARIS

INVALID = sorted((Path(__file__).parent.parent / "config" / "invalid").glob("*.yaml"))

MINIMAL = """
calendars:
  offices: {}
commitments:
  email.reply: {channel: email, within: {working_days: 5}}
mailboxes:
  mystery:
    address: "Jeanne Martin <jeanne.martin@probes.example.net>"
    smtp: {host: smtp.example.net, tls: starttls, username: jeanne, password: "${SMTP_PASSWORD}"}
    imap: {host: imap.example.net, username: jeanne, password_file: imap-password}
sites:
  - {id: petit-palais, name: Petit Palais, calendar: offices, email: {address: info.pp@example.org}}
"""


def expected_message(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first.startswith("# expect: "), f"{path.name} must start with '# expect: <message>'"
    return first.removeprefix("# expect: ")


def test_the_paris_museums_config_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(PARIS)]) == 0
    assert "14 sites" in capsys.readouterr().out


def test_the_paris_config_has_the_fourteen_museums_closed_on_mondays() -> None:
    config = load_config(PARIS)
    assert len(config.sites) == 14
    museum = config.calendars["museum"]
    assert set(museum.weekly_slots()) == {1, 2, 3, 4, 5, 6}  # Tuesday to Sunday
    assert all(s.phone and s.phone.number.startswith("+33199001") for s in config.sites)
    assert all(s.email and s.email.address.endswith("@example.org") for s in config.sites)


def test_there_are_at_least_ten_distinct_broken_configs() -> None:
    assert len({expected_message(p) for p in INVALID}) >= 10


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_a_broken_config_exits_2_naming_the_path_and_line(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(path)]) == 2
    errors = capsys.readouterr().err
    assert f"  {expected_message(path)}\n" in errors + "\n"


def test_it_lists_every_error_at_once() -> None:
    text = MINIMAL.replace("info.pp@example.org", "nope").replace("calendar: offices", "calendar: nowhere")
    with pytest.raises(ConfigError) as caught:
        parse_config(text, environ={}, base_dir=Path("/nonexistent"))
    paths = [p.path for p in caught.value.problems]
    assert paths == [
        "mailboxes.mystery.smtp.password",
        "mailboxes.mystery.imap.password_file",
        "sites[0].calendar",
        "sites[0].email.address",
    ]


def test_it_reads_secrets_from_the_environment_and_files(tmp_path: Path) -> None:
    (tmp_path / "imap-password").write_text("from-a-file\n", encoding="utf-8")
    config = parse_config(MINIMAL, environ={"SMTP_PASSWORD": "from-env"}, base_dir=tmp_path)
    mailbox = config.mailboxes["mystery"]
    assert isinstance(mailbox.smtp.password, SecretStr)
    assert mailbox.smtp.password.get_secret_value() == "from-env"
    assert mailbox.imap.password.get_secret_value() == "from-a-file"


def test_secrets_never_show_in_the_config_repr(tmp_path: Path) -> None:
    (tmp_path / "imap-password").write_text("file-secret-4f1e", encoding="utf-8")
    config = parse_config(MINIMAL, environ={"SMTP_PASSWORD": "env-secret-9b2c"}, base_dir=tmp_path)
    shown = repr(config) + str(config) + config.model_dump_json()
    assert "env-secret-9b2c" not in shown and "file-secret-4f1e" not in shown


def test_it_refuses_a_password_given_twice(tmp_path: Path) -> None:
    text = MINIMAL.replace("password_file: imap-password", 'password: "x", password_file: imap-password')
    with pytest.raises(ConfigError, match="give password or password_file, not both"):
        parse_config(text, environ={"SMTP_PASSWORD": "x"}, base_dir=tmp_path)


def test_it_refuses_a_key_given_twice() -> None:
    text = MINIMAL.replace("calendars:\n  offices: {}", "calendars:\n  offices: {}\n  offices: {}")
    with pytest.raises(ConfigError, match=r"calendars.offices: given twice \(line 4\)"):
        parse_config(text, environ={"SMTP_PASSWORD": "x"})


def test_it_explains_invalid_yaml_with_its_line() -> None:
    with pytest.raises(ConfigError, match=r"not valid YAML.*started on line 3"):
        parse_config("timezone: Europe/Paris\nsites:\n  - [unclosed\n", environ={})


def test_it_fills_defaults_from_the_design() -> None:
    config = parse_config(MINIMAL.replace("password_file: imap-password", "password: x"),
                          environ={"SMTP_PASSWORD": "x"})
    assert config.http.listen == "127.0.0.1:9137"
    assert config.database.startswith("sqlite+aiosqlite://")
    reply = config.commitments["email.reply"]
    assert reply.channel == "email" and reply.target_ratio == 0.90 and reply.answer_kinds == ("human_reply",)
    assert config.mailboxes["mystery"].imap.port_or_default() == 993
    assert config.sites[0].email.per_month == 4


def test_config_models_are_frozen(paris_config) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="frozen"):
        paris_config.sites[0].name = "changed"  # type: ignore[misc]


def test_a_missing_file_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "/nonexistent/qualimon.yaml"]) == 2
    assert "cannot read the file" in capsys.readouterr().err


def test_the_config_reference_is_generated_from_the_models() -> None:
    from monitor.config.reference import render

    reference = Path(__file__).resolve().parents[2] / "docs" / "config-reference.md"
    assert reference.read_text(encoding="utf-8") == render(), (
        "docs/config-reference.md is stale: python -m monitor.config.reference > docs/config-reference.md")


def test_an_alias_bomb_is_refused_before_any_value_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = loader._Builder.build

    def counting(self: loader._Builder, node: object, path: tuple[str | int, ...]) -> object:
        built.append(path)
        return real(self, node, path)  # type: ignore[arg-type]

    monkeypatch.setattr(loader._Builder, "build", counting)
    bomb = Path(__file__).parent.parent / "config" / "invalid" / "alias-bomb.yaml"
    with pytest.raises(ConfigError, match=r"alias \*lol4 makes the document larger than 1,000,000 values"):
        load_config(bomb, environ={})
    assert built == []  # expanded, it is 1.2 million values: the 9-level version would be a billion


def test_aliases_repeat_a_value_as_yaml_says() -> None:
    text = MINIMAL.replace("calendars:\n  offices: {}",
                           'calendars:\n  offices: {opening_hours: &hours {mon-fri: ["09:00-17:00"]}}\n'
                           "  museum: {opening_hours: *hours}")
    config = parse_config(text.replace("password_file: imap-password", "password: x"), environ={"SMTP_PASSWORD": "x"})
    assert config.calendars["museum"].opening_hours == config.calendars["offices"].opening_hours
