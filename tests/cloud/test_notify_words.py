"""What a customer's email says: both parts, the signed link, the shop's name, customer words
only (no status codes, no internal notes), the preview attached to "design ready"."""

from __future__ import annotations

import re
from email.message import EmailMessage
from pathlib import Path

import pytest

from crown_edge.cloud.mail import MailSettings, email_problem
from crown_edge.cloud.notify_words import (
    NOTICE_OF_STATUS,
    Alternative,
    Contact,
    Notice,
    compose,
    message_id,
    notice_of,
)
from crown_edge.cloud.words import REASON_WORDS
from crown_edge.errors import ConfigError

LINK = "https://orders.example.com/status/J-7?token=v1.abc123"
CONTACT = Contact("J-7", "jane@example.com", LINK, text=("Club Champion", "2026"))
SHOP = "Crown Trophy Leeds"
SENDER = "orders@crown-trophy.example"
INTERNAL = "QA: burn mark near edge, tech Bob says redo on laser-2"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="10" height="10"/></svg>'


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


def _compose(status: str, reason: str | None = None, **kw: object) -> EmailMessage:
    event = {"event_id": f"J-7:{status}", "job_id": "J-7", "status": status}
    if reason is not None:
        event["reason"] = reason
    notice = notice_of(event)
    assert notice is not None
    return compose(notice, CONTACT, shop_name=SHOP, sender=SENDER, now=1.7e9, **kw)  # type: ignore[arg-type]


#: codes (status words, notice kinds, reason codes): none may reach a customer's message
CODES = {c for c in (*NOTICE_OF_STATUS, *NOTICE_OF_STATUS.values(), *REASON_WORDS) if "_" in c}


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        ("pending_approval", None),
        ("blocked", "no_inventory"),
        ("blocked", "text_does_not_fit"),
        ("blocked", INTERNAL),
        ("revision_requested", INTERNAL),
        ("engraving", None),
        ("complete", None),
        ("escalated", INTERNAL),
    ],
)
def test_every_message_has_both_parts_the_link_and_no_codes_or_notes(
    status: str, reason: str | None
) -> None:
    message = _compose(status, reason)
    text, html = _parts(message)
    assert LINK in text
    assert f'href="{LINK}"' in html
    assert SHOP in text and SHOP in html and SHOP in str(message["From"])
    assert message["To"] == "jane@example.com"
    assert message["Message-ID"] == message_id(f"J-7:{status}", SENDER)
    whole = " ".join((text, html, str(message["Subject"])))
    assert INTERNAL not in whole
    assert "Bob" not in whole and "laser-2" not in whole
    for code in CODES:
        assert not re.search(rf"\b{re.escape(code)}\b", whole), code
    if reason is not None and reason in REASON_WORDS:
        assert REASON_WORDS[reason] in text


def test_design_ready_attaches_the_preview_and_asks_for_approval() -> None:
    message = _compose("pending_approval", design_svg=SVG)
    text, _ = _parts(message)
    assert "approve" in text and "changed" in text
    (attachment,) = list(message.iter_attachments())
    assert attachment.get_content_type() == "image/svg+xml"
    assert attachment.get_content() == SVG
    assert "Club Champion / 2026" in text  # the customer's own text, to recognise the order


def test_blocked_lists_the_alternatives_and_links_to_choose() -> None:
    offered = [
        Alternative("Brass plaque A5", "brass"),
        Alternative("Glass tumbler"),
        Alternative("Trophy plate", "anodised-aluminium"),
    ]
    text, html = _parts(_compose("blocked", "no_inventory", alternatives=offered))
    assert "Brass plaque A5 (brass)" in text and "Glass tumbler" in text
    assert "<li>Brass plaque A5 (brass)</li>" in html
    assert "Trophy plate (anodised aluminium)" in text
    assert "Choose another item" in text
    text, _ = _parts(_compose("blocked", "no_inventory", alternatives=[]))
    assert "No other item can replace it right now" in text
    text, _ = _parts(_compose("blocked", "no_inventory"))
    assert "choose another item" in text


def test_complete_and_escalated_say_what_happens_next() -> None:
    text, _ = _parts(_compose("complete"))
    assert "ready for you to collect" in text and "rate your order" in text
    text, _ = _parts(_compose("escalated", INTERNAL))
    assert "will be in touch" in text


def test_html_escapes_what_came_from_the_order() -> None:
    contact = Contact("J-8", "a@example.com", LINK + "&x=<b>", text=("<script>x</script>",))
    notice = Notice("J-8:3", "J-8", "complete")
    message = compose(notice, contact, shop_name="A & B", sender=SENDER, now=0.0)
    _, html = _parts(message)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "A &amp; B" in html


def test_statuses_without_a_notice_and_malformed_events_make_none() -> None:
    assert notice_of({"event_id": "J:1", "job_id": "J", "status": "queued"}) is None
    assert notice_of({"job_id": "J", "status": "complete"}) is None
    assert notice_of({"event_id": 3, "job_id": "J", "status": "complete"}) is None


@pytest.mark.parametrize(
    "value",
    [
        "jane",
        "jane@",
        "@example.com",
        "jane@localhost",
        "jane@example.com\r\nBcc: x@y.z",
        "Jane <jane@example.com>",
        "a,b@example.com",
        "jane@exa mple.com",
        "jane..doe@example.com",
        "jane@-example.com",
        "jane@1.2.3.4",
        "",
        "x" * 250 + "@example.com",
        42,
    ],
)
def test_malformed_addresses_are_refused(value: object) -> None:
    assert email_problem(value) is not None


@pytest.mark.parametrize("value", ["jane@example.com", "j.o'neil+orders@mail.example.co.uk"])
def test_plain_addresses_pass(value: str) -> None:
    assert email_problem(value) is None


def test_mail_settings_from_config(tmp_path: Path) -> None:
    s = MailSettings.from_config(
        {"backend": "ses", "store": "n.db", "retry_initial": 1, "ses_region": "eu-west-1"},
        tmp_path,
    )
    assert s.backend == "ses" and s.store == tmp_path / "n.db" and s.retry_initial == 1.0
    assert MailSettings.from_config({}, tmp_path).backend == "smtp"
    for bad in ({"backend": "pigeon"}, {"smtp_port": 0}, {"sender": "nobody"}, {"typo": 1}):
        with pytest.raises(ConfigError):
            MailSettings.from_config(bad, tmp_path)


def test_the_cloud_config_mail_table(tmp_path: Path) -> None:
    from crown_edge.cli.cloud import load_cloud_config

    env = {"CROWN_API_KEY": "env-key-0123456789abc"}
    path = tmp_path / "cloud.toml"
    secrets = '[api]\ntoken_secrets = ["secret-0123456789abcdef"]\n'
    path.write_text(secrets)
    assert load_cloud_config(path, env).mail is None  # no table: no notifications
    path.write_text(secrets + '[mail]\nbackend = "off"\n')
    assert load_cloud_config(path, env).mail is None
    path.write_text(
        secrets + '[mail]\nsmtp_host = "mail.example.com"\nsmtp_port = 587\n'
        'smtp_security = "starttls"\nsender = "Shop <orders@example.com>"\n'
    )
    mail = load_cloud_config(path, env).mail
    assert mail is not None and mail.backend == "smtp" and mail.smtp_port == 587
    assert mail.store == tmp_path / "var/notifications.db"
    path.write_text(secrets + '[mail]\nsmtp_security = "maybe"\n')
    with pytest.raises(ConfigError, match=r"\[mail\] smtp_security"):
        load_cloud_config(path, env)
