"""What a customer's notification says: one email per notice, plain text and HTML. Pure.

A notice is one status event of a job that the customer wants to hear about
(:data:`NOTICE_OF_STATUS`). The words come from the customer's vocabulary
(:mod:`crown_edge.cloud.words`): a status is never shown as its code, a reason only as the
sentence of a known reason code, and nothing else of the event (free-text reasons, QA notes,
escalation notes, machine ids) reaches the message. Every message carries the order's signed
link (``status_url``), where the customer approves, chooses, rates or just follows the job.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Final

from crown_edge.cloud.words import reason_words, status_words

#: status word → notice kind (statuses not listed send nothing).
NOTICE_OF_STATUS: Final[dict[str, str]] = {
    "pending_approval": "design_ready",
    "blocked": "blocked",
    "revision_requested": "revision_received",
    "engraving": "engraving_started",
    "complete": "complete",
    "escalated": "escalated",
}
#: Kinds sent only to customers who asked for them with the order.
OPTIONAL_KINDS: Final = frozenset({"engraving_started"})
#: Largest design preview attached to a message.
MAX_ATTACHMENT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Contact:
    """Who hears about an order, and the order's own signed link (given at the door)."""

    job_id: str
    email: str
    status_url: str
    notify_engraving: bool = False
    text: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Notice:
    """One status event to tell the customer about (``event_id`` is the event's own id)."""

    event_id: str
    job_id: str
    kind: str
    reason: str | None = None
    design_url: str | None = None


@dataclass(frozen=True, slots=True)
class Alternative:
    """An in-stock item offered instead of one out of stock."""

    name: str
    material: str = ""


@dataclass(frozen=True, slots=True)
class Words:
    """A message before it is laid out: subject, paragraphs, and the link's label."""

    subject: str
    paragraphs: tuple[str, ...]
    action: str
    bullets: tuple[str, ...] = ()


def notice_of(event: Mapping[str, object]) -> Notice | None:
    """The notice a status event makes (None: the customer is not told about this status)."""
    kind = NOTICE_OF_STATUS.get(str(event.get("status")))
    event_id, job_id = event.get("event_id"), event.get("job_id")
    if kind is None or not isinstance(event_id, str) or not isinstance(job_id, str):
        return None
    reason, design = event.get("reason"), event.get("design_url")
    return Notice(
        event_id,
        job_id,
        kind,
        reason=reason if isinstance(reason, str) else None,
        design_url=design if isinstance(design, str) else None,
    )


def words_for(notice: Notice, alternatives: Sequence[Alternative] | None = None) -> Words:
    """The customer's words for ``notice``; only known reason codes are explained.

    ``alternatives`` are the items offered for one out of stock (None: not known yet)."""
    ref = f"order {notice.job_id}"
    if notice.kind == "design_ready":
        return Words(
            f"Your design is ready for your approval ({ref})",
            (
                "The design preview for your order is ready; it is attached to this message.",
                "Please look at it and approve it, or tell us what you would like changed. "
                "We start engraving as soon as you approve.",
            ),
            "See your design and approve it or ask for changes",
        )
    if notice.kind == "blocked":
        if notice.reason == "no_inventory":
            if alternatives is None:
                offer = "You can choose another item for your order instead."
            elif alternatives:
                offer = "We can engrave your order on one of these instead:"
            else:
                offer = (
                    "No other item can replace it right now: we go ahead as soon as it is back "
                    "in stock, or you can cancel the order."
                )
            return Words(
                f"Your item is out of stock ({ref})",
                (reason_words("no_inventory") or "", offer),
                "Choose another item (or cancel the order)",
                tuple(
                    f"{a.name} ({_material(a.material)})" if a.material else a.name
                    for a in alternatives or ()
                ),
            )
        headline, sentence = status_words("blocked")
        explained = reason_words(notice.reason)
        return Words(
            f"{headline}: {ref}",
            (explained or sentence, "A member of our team will contact you about it."),
            "See your order",
        )
    if notice.kind == "revision_received":
        return Words(
            f"We have your changes ({ref})",
            (
                "Thank you: we have the changes you asked for, and our designers are working "
                "on a new preview of your engraving.",
                "We will write again as soon as it is ready for you to look at.",
            ),
            "See your order",
        )
    if notice.kind == "engraving_started":
        return Words(
            f"Your item is being engraved ({ref})",
            (status_words("engraving")[1], "You can follow its progress live."),
            "Follow the engraving",
        )
    if notice.kind == "complete":
        return Words(
            f"Your order is ready ({ref})",
            (
                "Your engraving is finished and has passed our quality check. It is ready for "
                "you to collect, or on its way to you if you asked us to ship it.",
                "How did we do? You can rate your order (1 to 5 stars) on its page.",
            ),
            "Rate your order",
        )
    if notice.kind == "escalated":
        return Words(
            f"About your order {notice.job_id}",
            (
                "Your order needs a closer look by our team, so it is taking longer than planned.",
                "A member of our team will be in touch with you shortly; you do not need to "
                "do anything.",
            ),
            "See your order",
        )
    headline, sentence = status_words("received")
    return Words(f"{headline}: {ref}", (sentence,), "See your order")


def _material(material: str) -> str:
    """A material id in words (``anodised-aluminium`` → ``anodised aluminium``)."""
    return material.replace("-", " ").replace("_", " ")


def message_id(event_id: str, sender: str) -> str:
    """The Message-ID of the notice of ``event_id``: the same on every attempt, so a receiver
    that got a message whose acceptance never reached us can drop the second copy."""
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    domain = parseaddr(sender)[1].rpartition("@")[2] or "crown-edge.localhost"
    return f"<{digest}@{domain}>"


def compose(
    notice: Notice,
    contact: Contact,
    *,
    shop_name: str,
    sender: str,
    now: float,
    reply_to: str | None = None,
    alternatives: Sequence[Alternative] | None = None,
    design_svg: bytes | None = None,
) -> EmailMessage:
    """The email for ``notice``: plain-text and HTML parts, the preview attached when given."""
    words = words_for(notice, alternatives)
    link = contact.status_url
    text_lines = ["Hello,", ""]
    for paragraph in words.paragraphs:
        text_lines += [paragraph, ""]
    text_lines += [f"  - {b}" for b in words.bullets]
    if words.bullets:
        text_lines.append("")
    text_lines += [f"{words.action}:", link, ""]
    if contact.text:
        text_lines += [f"Your text: {' / '.join(contact.text)}", ""]
    text_lines += [
        "Kind regards,",
        shop_name,
        "",
        "--",
        f"This message is about your order {notice.job_id} with {shop_name}. The link is "
        "personal: anyone who has it can see and answer for your order, so please do not "
        "forward it.",
    ]
    message = EmailMessage()
    display, address = parseaddr(sender)
    user, _, domain = address.rpartition("@")
    message["From"] = Address(display or shop_name, user, domain)
    message["To"] = contact.email
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = words.subject
    message["Date"] = formatdate(now, localtime=False)
    message["Message-ID"] = message_id(notice.event_id, sender)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content("\n".join(text_lines) + "\n")
    message.add_alternative(_html(words, link, contact, notice, shop_name), subtype="html")
    if design_svg is not None and len(design_svg) <= MAX_ATTACHMENT:
        message.add_attachment(
            design_svg,
            maintype="image",
            subtype="svg+xml",
            filename=f"design-{notice.job_id}.svg",
        )
    return message


def _html(words: Words, link: str, contact: Contact, notice: Notice, shop_name: str) -> str:
    e = html.escape
    paragraphs = "\n".join(f"<p>{e(p)}</p>" for p in words.paragraphs if p)
    bullets = (
        "<ul>" + "".join(f"<li>{e(b)}</li>" for b in words.bullets) + "</ul>"
        if words.bullets
        else ""
    )
    text = (
        f'<p style="color:#555">Your text: {e(" / ".join(contact.text))}</p>'
        if contact.text
        else ""
    )
    button = (
        f'<p><a href="{e(link)}" style="display:inline-block;padding:10px 16px;'
        f'background:#1f4e79;color:#fff;text-decoration:none;border-radius:4px">'
        f"{e(words.action)}</a></p>"
        f'<p style="font-size:90%;color:#555">Or open this link: {e(link)}</p>'
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{e(words.subject)}</title></head>
<body style="font-family:sans-serif;line-height:1.5;max-width:36em">
<h1 style="font-size:1.3em">{e(shop_name)}</h1>
<p>Hello,</p>
{paragraphs}
{bullets}
{button}
{text}
<p>Kind regards,<br>{e(shop_name)}</p>
<hr><p style="font-size:85%;color:#777">This message is about your order {e(notice.job_id)}
with {e(shop_name)}. The link is personal: anyone who has it can see and answer for your
order, so please do not forward it.</p>
</body></html>
"""
