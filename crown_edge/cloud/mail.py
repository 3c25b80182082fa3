"""Mail out of the cloud: the ``[mail]`` settings and the two ways a message leaves (SMTP, SES).

Why SMTP through ``aiosmtplib`` is the default: every mail service a shop may already use (its
own mail server, Microsoft 365, Google Workspace, Postmark, SES itself) accepts SMTP, so the
default ties the shop to no provider; ``aiosmtplib`` is the maintained asyncio SMTP client
(typed, STARTTLS and implicit TLS, AUTH, one call per message), so sending never holds the event
loop the Order API and the bridge share, where the standard library's ``smtplib`` would block it
or need a thread per message. SMTP also answers with codes that say whether to try again: a
``4xx`` (greylisting, a full queue, ``451 try later``) is retried with back-off, a ``5xx`` (no
such mailbox) is final. The SES option (``backend = "ses"``, boto3 ``send_raw_email``, the same
MIME message) is for a cloud that runs in AWS and prefers IAM credentials over an SMTP
password; embedded mode points it at moto's SES.

Settings are read once, from the cloud config's ``[mail]`` table, by
:meth:`MailSettings.from_config`; without the table notifications are off.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosmtplib

from crown_edge.errors import ConfigError, CrownEdgeError

log = logging.getLogger(__name__)

Backend = Literal["smtp", "ses", "off"]
BACKENDS: tuple[Backend, ...] = ("smtp", "ses", "off")

MAX_EMAIL = 254
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def email_problem(value: object) -> str | None:
    """Why ``value`` is not a customer email address we can write to; None when it is.

    Deliberately plain: one ``local@domain`` address (no display name, no comments, ASCII), a
    domain of at least two labels. Anything a mail header could be bent with (line breaks,
    commas, angle brackets) fails here, at the door.
    """
    if not isinstance(value, str):
        return f"must be a string, got {type(value).__name__}"
    if len(value) > MAX_EMAIL:
        return f"longer than {MAX_EMAIL} characters"
    local, at, domain = value.rpartition("@")
    labels = domain.split(".")
    if (
        not at
        or len(local) > 64
        or not _LOCAL.fullmatch(local)
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        return "not an email address (name@example.com)"
    return None


class MailError(CrownEdgeError):
    """A message was not taken; ``transient`` says whether trying again later may help."""

    def __init__(self, message: str, *, transient: bool, code: int | None = None) -> None:
        super().__init__(message, transient=transient, code=code)
        self.transient = transient
        self.code = code


class MailTransport(Protocol):
    """Hands one message to a mail service."""

    async def send(self, message: EmailMessage) -> None:
        """Deliver ``message`` (To and From set); raise :class:`MailError`."""
        ...


@dataclass(frozen=True, slots=True)
class MailSettings:
    """How notifications leave and how hard delivery is tried (``[mail]``).

    ``sender`` is the From address (it may carry a display name); ``shop_name`` signs every
    message. ``store`` is the notifier's database (customer contacts, the sent set). A message a
    server refuses for now is tried ``max_attempts`` times in all, ``retry_initial`` seconds
    apart at first, doubling up to ``retry_max``. ``smtp_security`` is ``none``, ``starttls`` or
    ``tls`` (implicit TLS, port 465). An "out of stock" notice waits up to ``offer_wait``
    seconds for the alternatives to be offered, so it can list them.
    """

    backend: Backend = "smtp"
    sender: str = "orders@crown-trophy.localhost"
    shop_name: str = "Crown Trophy"
    store: Path = Path("var/notifications.db")
    reply_to: str | None = None
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: Literal["none", "starttls", "tls"] = "none"
    smtp_username: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    ses_region: str = "us-east-1"
    ses_endpoint_url: str | None = None
    timeout: float = 30.0
    max_attempts: int = 8
    retry_initial: float = 5.0
    retry_max: float = 900.0
    offer_wait: float = 10.0

    @classmethod
    def from_config(cls, table: Mapping[str, Any], base_dir: Path) -> MailSettings:
        """Parse a ``[mail]`` table; a relative ``store`` is taken from ``base_dir``."""
        known = set(cls.__dataclass_fields__)
        for key in table:
            if key not in known:
                raise ConfigError("mail", key, "unknown key", ", ".join(sorted(known)))

        def get(key: str, kind: type | tuple[type, ...]) -> Any:
            default = cls.__dataclass_fields__[key].default
            value = table.get(key, default)
            if value is None and default is None:
                return None
            kinds = kind if isinstance(kind, tuple) else (kind,)
            if not isinstance(value, kinds) or isinstance(value, bool) != (bool in kinds):
                names = " or ".join(k.__name__ for k in kinds)
                raise ConfigError("mail", key, f"got {value!r}", f"a {names}")
            return value

        backend = get("backend", str)
        if backend not in BACKENDS:
            raise ConfigError("mail", "backend", f"got {backend!r}", " | ".join(BACKENDS))
        security = get("smtp_security", str)
        if security not in ("none", "starttls", "tls"):
            raise ConfigError("mail", "smtp_security", f"got {security!r}", "none|starttls|tls")
        port = get("smtp_port", int)
        if not 1 <= port <= 65535:
            raise ConfigError("mail", "smtp_port", f"got {port}", "1..65535")
        sender = get("sender", str)
        if email_problem(parseaddr(sender)[1]) is not None:
            raise ConfigError("mail", "sender", f"got {sender!r}", "an email address")
        attempts = get("max_attempts", int)
        if not 1 <= attempts <= 100:
            raise ConfigError("mail", "max_attempts", f"got {attempts}", "1..100")
        initial = float(get("retry_initial", (int, float)))
        maximum = float(get("retry_max", (int, float)))
        if not 0 < initial <= maximum:
            raise ConfigError("mail", "retry_initial", f"got {initial}", f"0 < it <= {maximum}")
        raw_store = table.get("store", "var/notifications.db")
        if not isinstance(raw_store, str) or not raw_store:
            raise ConfigError("mail", "store", f"got {raw_store!r}", "a path (str)")
        store = Path(raw_store)
        return cls(
            backend=backend,
            sender=sender,
            shop_name=get("shop_name", str),
            store=store if store.is_absolute() else base_dir / store,
            reply_to=get("reply_to", str),
            smtp_host=get("smtp_host", str),
            smtp_port=port,
            smtp_security=security,
            smtp_username=get("smtp_username", str),
            smtp_password=get("smtp_password", str),
            ses_region=get("ses_region", str),
            ses_endpoint_url=get("ses_endpoint_url", str),
            timeout=float(get("timeout", (int, float))),
            max_attempts=attempts,
            retry_initial=initial,
            retry_max=maximum,
            offer_wait=float(get("offer_wait", (int, float))),
        )


class SmtpTransport:
    """A :class:`MailTransport` over SMTP (``aiosmtplib``), one connection per message."""

    def __init__(self, settings: MailSettings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> None:
        """Send; a ``4xx`` answer or a lost connection is transient, a ``5xx`` final."""
        s = self.settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.smtp_host,
                port=s.smtp_port,
                username=s.smtp_username,
                password=s.smtp_password,
                use_tls=s.smtp_security == "tls",
                start_tls=s.smtp_security == "starttls",
                timeout=s.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            code = max(codes) if codes else 550
            raise MailError(f"recipient refused: {code}", transient=code < 500, code=code) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise MailError(
                f"server answered {exc.code} {exc.message}",
                transient=not 500 <= exc.code < 600,
                code=exc.code,
            ) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise MailError(f"mail server unreachable: {exc}", transient=True) from exc


#: SES error codes worth trying again (the rest, e.g. MessageRejected, are final).
_SES_TRANSIENT = frozenset({"Throttling", "ThrottlingException", "ServiceUnavailable"})


class SesTransport:
    """A :class:`MailTransport` over AWS SES (``send_raw_email``: the same MIME message).

    boto3 is synchronous: each call runs in a worker thread. With a loopback
    ``ses_endpoint_url`` (moto, embedded mode) the sender is verified on first use, as an
    operator does once in the AWS console.
    """

    def __init__(self, settings: MailSettings, client: Any | None = None) -> None:
        self.settings = settings
        self.client = client if client is not None else _ses_client(settings)
        self._verified = False

    async def send(self, message: EmailMessage) -> None:
        """Send; throttling and outages are transient, a rejection final."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            if not self._verified and self.settings.ses_endpoint_url is not None:
                address = parseaddr(self.settings.sender)[1]
                await asyncio.to_thread(self.client.verify_email_identity, EmailAddress=address)
                self._verified = True
            await asyncio.to_thread(
                self.client.send_raw_email, RawMessage={"Data": message.as_bytes()}
            )
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            raise MailError(f"SES refused: {code}", transient=code in _SES_TRANSIENT) from exc
        except BotoCoreError as exc:
            raise MailError(f"SES unreachable: {exc}", transient=True) from exc


def _ses_client(settings: MailSettings) -> Any:
    import boto3.session

    if settings.ses_endpoint_url is None:
        session = boto3.session.Session(region_name=settings.ses_region)
        return session.client("ses")
    return boto3.session.Session(
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name=settings.ses_region,
    ).client("ses", endpoint_url=settings.ses_endpoint_url)


def transport_for(settings: MailSettings) -> MailTransport | None:
    """The transport ``settings.backend`` names (None: notifications are off)."""
    if settings.backend == "smtp":
        return SmtpTransport(settings)
    if settings.backend == "ses":
        return SesTransport(settings)
    return None
