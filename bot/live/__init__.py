"""Live hand-off: an organisation whose `referral:` block sets `live: true` talks with the person through
the bot, one forum topic per person in its staff supergroup. Neither side sees the other's account.

- `availability`: which listed staff said /available (in memory, per organisation);
- `titles`: the topic title (alias or "Person N", language, risk; never a name, username or id);
- `replies`: the person's messages (YAML replies) and the staff's operational texts;
- `opener`: on a staff Accept, open the topic and the session, or say live is unavailable;
- `relay`: copy messages both ways, flag risk, close from either side;
- `router`: the aiogram router (private chats with an open session, and the staff supergroups);
- `service`: wires them for `hubbot run`.

See docs/live-handoff.md.
"""
