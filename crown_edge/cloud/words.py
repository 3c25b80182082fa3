"""What the customer is shown about a job: friendly words, and only fields meant for them. Pure.

Every status word of the job lifecycle and every known ``blocked``/``cancelled`` reason code has
customer words here; a test walks all of them. :func:`customer_view` is the one place a job's
state is cut down for a browser: it keeps a fixed set of fields and never passes a free-text
``reason`` through, because workflow and workshop reasons can carry a technician's QA notes, an
alarm text or a machine message (internal, and not the customer's business).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

#: status word → (headline, one sentence for the customer)
STATUS_WORDS: Final[dict[str, tuple[str, str]]] = {
    "received": ("Order received", "We have your order and are checking it."),
    "validated": ("Order checked", "Your item is reserved and your text fits."),
    "blocked": ("On hold", "Your order cannot go ahead just yet."),
    "designing": ("Preparing your design", "We are drawing a preview of your engraving."),
    "pending_approval": (
        "Waiting for your approval",
        "Please look at the preview below and approve it or ask for changes.",
    ),
    "approved": ("Design approved", "Thank you. Your design goes to the workshop."),
    "revision_requested": (
        "Changes requested",
        "Our designers will get in touch about the changes you asked for.",
    ),
    "queued": ("Queued for engraving", "Your item is waiting for a free engraving machine."),
    "engraving": ("Engraving", "Your item is being engraved right now."),
    "interrupted": (
        "Paused by the workshop",
        "The engraving was paused; a technician is looking at it.",
    ),
    "qa_pending": ("Quality check", "A technician is checking the finished engraving."),
    "qa_failed": (
        "Being engraved again",
        "The engraving did not pass our quality check, so we are making it again.",
    ),
    "complete": ("Complete", "Your engraving is finished."),
    "escalated": ("With our team", "A member of our team will contact you about your order."),
    "cancelled": ("Cancelled", "This order has been cancelled."),
    "failed": ("We could not complete this order", "Our team will contact you."),
}

#: reason code → sentence for the customer (codes from the workflow and the workshop)
REASON_WORDS: Final[dict[str, str]] = {
    "no_inventory": "The item you chose is out of stock.",
    "text_does_not_fit": "Your text does not fit on the item's engraving area.",
    "invalid_message": "Something in the order details was not right.",
    "unknown_item": "We do not stock the item you chose.",
    "no_eligible_machine": "None of our machines can engrave this item.",
    # the workflow's own cancel sentences (crown_edge.workflow.names REASON_*)
    "out of stock: no alternative chosen and no restock within 7 days": (
        "The item stayed out of stock and no replacement was chosen within 7 days."
    ),
    "cancelled by the customer": "You cancelled the order.",
}

#: Fields of a job view or status event a browser may see.
CUSTOMER_FIELDS: Final = (
    "job_id",
    "status",
    "queue_position",
    "progress",
    "retry_count",
    "design_url",
    "design_revision",
    "history",
    "timeline",
    "steps",
    "item_id",
    "text",
    "due_date",
    "rush",
    "eta",
    "awaiting",
    "awaiting_until",
    "alternatives",
    "rating",
    "at",
    "shop_id",
)

#: Fields an offered alternative item may show.
_ALTERNATIVE_FIELDS: Final = ("item_id", "name", "material")


def status_words(status: str) -> tuple[str, str]:
    """Headline and sentence for a status word (a neutral fallback for one not yet known)."""
    return STATUS_WORDS.get(status, ("Order in progress", "We are working on your order."))


def reason_words(reason: str | None) -> str | None:
    """The customer's sentence for a reason code; ``None`` for free text or no reason."""
    if reason is None:
        return None
    return REASON_WORDS.get(reason)


def customer_view(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a job view or status event the customer sees, with its words added.

    ``label`` and ``detail`` are the headline and sentence; ``reason_text`` explains a known
    reason code. Everything else (notes, machine ids, sources, event ids, free-text reasons) stays
    behind.
    """
    out: dict[str, Any] = {k: raw[k] for k in CUSTOMER_FIELDS if raw.get(k) is not None}
    status = str(raw.get("status") or "received")
    out["status"] = status
    out["label"], out["detail"] = status_words(status)
    text = reason_words(raw.get("reason") if isinstance(raw.get("reason"), str) else None)
    if text is not None:
        out["reason"] = raw["reason"]
        out["reason_text"] = text
    if isinstance(out.get("progress"), int | float):
        out["progress"] = min(1.0, max(0.0, float(out["progress"])))
    else:
        out.pop("progress", None)
    if "alternatives" in out:
        out["alternatives"] = [
            {k: str(alt[k]) for k in _ALTERNATIVE_FIELDS if k in alt}
            for alt in out["alternatives"]
            if isinstance(alt, Mapping) and "item_id" in alt
        ]
    if "history" in out:
        out["history"] = [str(h) for h in out["history"] if isinstance(h, str)]
    return out
