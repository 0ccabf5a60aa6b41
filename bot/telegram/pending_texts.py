"""User-visible strings that have no home in the content yet: ONE table of English placeholders.

Everything a person reads should come from reviewed YAML. The adapter takes these from content
first (command descriptions from the `help` reply's "/command - description" lines and from button
labels; the group button from a `private_chat` button) and uses this table only where content has
nothing. Move each into YAML and delete it here.
"""

from __future__ import annotations

PENDING_TEXTS: dict[str, str] = {
    # the URL button under `group_notice` (until intents/conversation.yaml has buttons.private_chat)
    "private_chat_button": "💬 Open a private chat",
    # command menu descriptions not covered by the help reply or a button label
    "command_start": "Start the conversation",
    "command_help": "How to use this bot",
    "command_menu": "Main menu",
    "command_sos": "Crisis lines, any time",
    "command_resources": "Organisations and helplines",
    "command_videos": "Videos from the hub",
    "command_creators": "Creators from the hub",
    "command_organizations": "Organisations that can help",
    "command_language": "Change language",
    "command_region": "Change your country",
    "command_privacy": "What I store",
    "command_forget": "Delete everything about you",
    "command_stop": "Stop messages from me",
}
