"""Validate and render a link send's recipients before anything is queued.

Phone numbers are parsed and normalised to E.164 with ``phonenumbers`` (numbers without a
country code are read in ``BULKOPS_DEFAULT_PHONE_REGION``, TR by default as in the seed);
e-mail addresses with ``email-validator`` (syntax only, no DNS). A recipient that fails a
check becomes a ``Skipped`` item with a Validation error and counts in the warnings; if no
recipient is left, the whole request is refused.

Templates use ``{name}``, ``{link}``, ``{code}`` and any ``personalizationData`` key. They are
filled by plain substitution of ``{identifier}`` — never ``str.format`` — so a template can't
reach attributes or format specs.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from urllib.parse import quote

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from schemas.common import Channel, ErrorCategory, ItemError
from schemas.link_wire import PreparedRecipient
from schemas.requests import BulkLinkRecipient, BulkLinkSendRequest

PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
BUILT_INS = frozenset({"name", "link", "code"})
MAX_MESSAGE_CHARS = 1600

_WARNINGS = {
    "INVALID_PHONE": "invalid phone numbers",
    "INVALID_EMAIL": "invalid e-mail addresses",
    "MISSING_ADDRESS": "recipients without the address their channel needs",
    "DUPLICATE_RECIPIENT": "duplicate recipients",
    "SPONSORSHIP_CODE_NOT_FOUND": "sponsorship codes not found",
    "MISSING_PERSONALIZATION": "recipients missing a template placeholder's value",
    "MESSAGE_TOO_LONG": "messages over 1600 characters",
}
_DETAIL_KEYS = {
    "INVALID_PHONE": "invalidPhoneNumbers",
    "INVALID_EMAIL": "invalidEmails",
    "MISSING_ADDRESS": "missingAddresses",
    "DUPLICATE_RECIPIENT": "duplicateRecipients",
    "SPONSORSHIP_CODE_NOT_FOUND": "missingCodes",
    "MISSING_PERSONALIZATION": "missingPersonalization",
    "MESSAGE_TOO_LONG": "messagesTooLong",
}


class TemplateError(ValueError):
    """A placeholder no recipient can fill."""

    def __init__(self, field: str, unknown: list[str]) -> None:
        super().__init__(f"unknown placeholders: {', '.join('{' + u + '}' for u in unknown)}")
        self.field = field


@dataclass
class Prepared:
    recipients: list[PreparedRecipient]
    skipped_by_code: Counter[str] = field(default_factory=Counter)

    @property
    def valid(self) -> int:
        return sum(1 for r in self.recipients if r.skip is None)

    def warnings(self) -> list[str]:
        return [f"{n} {_WARNINGS[code]}" for code, n in sorted(self.skipped_by_code.items())]

    def details(self) -> dict[str, int]:
        return {_DETAIL_KEYS[code]: n for code, n in sorted(self.skipped_by_code.items())}


def placeholders(template: str) -> set[str]:
    return set(PLACEHOLDER.findall(template))


def render(template: str, values: dict[str, str]) -> str:
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def check_template(request: BulkLinkSendRequest) -> None:
    """Refuse placeholders that neither the built-ins nor any recipient's data can fill."""
    known = set(BUILT_INS)
    for recipient in request.recipients:
        known.update(recipient.personalization_data)
    unknown = sorted(placeholders(request.message_template) - known)
    if unknown:
        raise TemplateError("messageTemplate", unknown)
    for i, recipient in enumerate(request.recipients):
        if recipient.custom_message:
            unknown = sorted(placeholders(recipient.custom_message) - known)
            if unknown:
                raise TemplateError(f"recipients.{i}.customMessage", unknown)


def normalise_phone(raw: str, region: str) -> str | None:
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_email(raw: str) -> str | None:
    try:
        return validate_email(raw, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


#: A normalised address, or None and why it cannot be used.
Checked = tuple[str | None, str | None]
#: Checks the raw addresses of one channel's recipients (see :func:`normalise_addresses`).
AddressStep = Callable[[list[str | None], Channel, str], list[Checked]]


def prepare(
    request: BulkLinkSendRequest,
    *,
    operation_id: str,
    region: str,
    link_base_url: str,
    known_codes: Callable[[Iterable[str]], set[str]],
    addresses: AddressStep | None = None,
) -> Prepared:
    """Every recipient, validated and rendered, in request order (index = item index).

    ``addresses`` does the address checks, the costly part (~35 µs a phone number): by
    default here, one by one; :class:`api.services.parallel.CpuPool` spreads a long list
    over processes."""
    check_template(request)
    codes = {r.sponsorship_code for r in request.recipients if r.sponsorship_code}
    existing = known_codes(codes) if codes else set()
    seen: set[str] = set()
    prepared = Prepared(recipients=[])
    channel = request.channel
    email = channel is Channel.EMAIL
    raws = [r.email if email else r.phone_number for r in request.recipients]
    checked = (addresses or normalise_addresses)(raws, channel, region)
    for index, recipient in enumerate(request.recipients):
        address, problem = checked[index]
        message: str | None = None
        if problem is None and address is not None:
            identity = address.casefold()  # mailboxes differing only in case are one person
            if identity in seen:
                problem = "DUPLICATE_RECIPIENT"
            seen.add(identity)
        code = recipient.sponsorship_code
        if problem is None and code is not None and code not in existing:
            problem = "SPONSORSHIP_CODE_NOT_FOUND"
        if problem is None:
            message, problem = _message(request, recipient, link_base_url)
        skip = None
        if problem is not None:
            prepared.skipped_by_code[problem] += 1
            skip = ItemError(
                item_index=index,
                item_id=f"{operation_id}:{index}",
                error_code=problem,
                error_message=_WARNINGS[problem].rstrip("s").capitalize(),
                error_category=ErrorCategory.VALIDATION,
                is_retryable=False,
            )
            message = None
        prepared.recipients.append(
            PreparedRecipient(
                index=index, name=recipient.name, address=address, message=message, skip=skip
            )
        )
    return prepared


def normalise_addresses(raws: list[str | None], channel: Channel, region: str) -> list[Checked]:
    """Each raw address of ``channel`` normalised, or why it cannot be used.

    A plain function of plain values, so that a process pool can run slices of a list."""
    if channel is Channel.EMAIL:
        return [_checked(raw and normalise_email(raw), raw, "INVALID_EMAIL") for raw in raws]
    return [_checked(raw and normalise_phone(raw, region), raw, "INVALID_PHONE") for raw in raws]


def _checked(address: str | None, raw: str | None, invalid: str) -> Checked:
    if not raw:
        return None, "MISSING_ADDRESS"
    return (address, None) if address else (None, invalid)


def _message(
    request: BulkLinkSendRequest, recipient: BulkLinkRecipient, link_base_url: str
) -> tuple[str | None, str | None]:
    template = recipient.custom_message or request.message_template
    code = recipient.sponsorship_code or ""
    link = f"{link_base_url}/{quote(code)}" if code else link_base_url
    values = {key: str(value) for key, value in recipient.personalization_data.items()}
    values.update(name=recipient.name, link=link, code=code)
    needed = placeholders(template)
    if ("code" in needed and not code) or not needed <= set(values):
        return None, "MISSING_PERSONALIZATION"
    message = render(template, values)
    if len(message) > MAX_MESSAGE_CHARS:
        return None, "MESSAGE_TOO_LONG"
    return message, None
