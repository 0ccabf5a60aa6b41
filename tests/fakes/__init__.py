"""Test doubles for hubbot's end-to-end tests (a fake Telegram Bot API server)."""

from .bot_api import ApiError, FakeBotAPI, WebhookReply, post_webhook_update

__all__ = ["ApiError", "FakeBotAPI", "WebhookReply", "post_webhook_update"]
