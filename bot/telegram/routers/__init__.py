"""One Router per feature; `bot.telegram.runner.setup_dispatcher` includes them in order."""
