"""Build the configured provider for each channel."""

from __future__ import annotations

from core.settings import WorkerSettings
from streams.providers.base import Provider
from streams.providers.http import TwilioStyleSms, WhatsAppCloud
from streams.providers.smtp import SmtpEmail


def build_providers(settings: WorkerSettings) -> dict[str, Provider]:
    timeout = settings.provider_timeout_seconds
    return {
        "SMS": TwilioStyleSms(
            base_url=settings.sms_api_url,
            account_sid=settings.sms_account_sid,
            auth_token=settings.sms_auth_token,
            sender=settings.sms_from,
            timeout=timeout,
        ),
        "WhatsApp": WhatsAppCloud(
            base_url=settings.whatsapp_api_url,
            api_version=settings.whatsapp_api_version,
            phone_number_id=settings.whatsapp_phone_number_id,
            token=settings.whatsapp_token,
            timeout=timeout,
        ),
        "Email": SmtpEmail(
            host=settings.smtp_host,
            port=settings.smtp_port,
            sender=settings.smtp_from,
            username=settings.smtp_username,
            password=settings.smtp_password,
            start_tls=settings.smtp_start_tls,
            timeout=timeout,
        ),
    }
