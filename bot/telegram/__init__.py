"""The aiogram 3 adapter: routers, keyboards, middlewares, polling/webhook and the HTTP listener.

`bot.telegram.runner.run_bot(settings, webhook=...)` is what `hubbot run` calls; `TelegramService`
builds the same wiring for the end-to-end tests.
"""
