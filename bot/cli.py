"""The `hubbot` command: run | chat | validate | test | explain | eval | bench | schema | referrals."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from bot.content.loader import Content, ContentError, Problem, load_content


def _settings():  # type: ignore[no-untyped-def]
    from bot.settings import Settings

    return Settings()


def _content_dir(argument: str | None) -> Path:
    return Path(argument) if argument else _settings().content


def _print_problems(problems: list[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def load_or_report(directory: Path) -> Content | None:
    """Load content; on failure print one `path:line: message` per problem to stderr."""
    try:
        return load_content(directory)
    except ContentError as error:
        _print_problems([Problem(str(Path(directory) / p.path) if not Path(p.path).is_absolute() else p.path, p.line, p.message) for p in error.problems])
        return None


def full_check(directory: Path) -> tuple[Content | None, list[Problem], float]:
    """Load, validate and compile patterns; problems carry paths under `directory`."""
    from bot.content.validate import validate_content
    from bot.nlu.content_check import pattern_problems
    from bot.nlu.patterns import PatternError
    from bot.nlu.pipeline import Understander

    started = time.perf_counter()
    try:
        content = load_content(directory)
    except ContentError as error:
        return None, [_under(directory, p) for p in error.problems], 0.0
    elapsed = time.perf_counter() - started
    problems = validate_content(content)
    try:
        understander = Understander(content)
        problems += pattern_problems(content, understander)
    except PatternError:
        # Understander failed on a pattern: compile them one by one to name it.
        problems += _pattern_problems_without_understander(content)
    return content, [_under(directory, p) for p in problems], elapsed


def _pattern_problems_without_understander(content: Content) -> list[Problem]:
    from bot.nlu.content_check import ESCALATION
    from bot.nlu.normalize import basic_tokens
    from bot.nlu.patterns import PatternCompiler, PatternError

    esc = content.escalation
    compiler = PatternCompiler(esc.terms, basic_tokens)
    source = content.files[ESCALATION]
    problems = []
    for section in ("signals", "modifiers", "masks"):
        for i, item in enumerate(getattr(esc, section)):
            for j, pattern in enumerate(item.patterns):
                try:
                    compiler.compile(item.id, pattern)
                except PatternError as error:
                    problems.append(Problem(ESCALATION, source.line_of((section, i, "patterns", j)), str(error)))
    return problems


def _under(directory: Path, problem: Problem) -> Problem:
    path = Path(problem.path)
    shown = str(path if path.is_absolute() else Path(directory) / path)
    return Problem(shown, problem.line, problem.message, problem.warning)


def cmd_validate(args: argparse.Namespace) -> int:
    directory = _content_dir(args.dir)
    content, problems, elapsed = full_check(directory)
    errors = [p for p in problems if not p.warning]
    _print_problems(problems)
    if content is None or errors:
        print(f"invalid: {len(errors)} problem(s)", file=sys.stderr)
        return 1
    r = content.resources
    patterns = sum(len(s.patterns) for s in content.escalation.signals)
    print(
        f"ok: {len(content.intents)} intents, {len(r.organizations)} organisations, {len(r.regions)} regions, "
        f"{len(content.escalation.signals)} risk signals ({patterns} patterns), {len(content.escalation.rules)} rules, "
        f"{len(r.videos)} videos, {len(r.creators)} creators"
        + (f", {len(problems)} warning(s)" if problems else "")
    )
    if args.verbose:
        print(f"loaded in {elapsed * 1000:.1f} ms (content hash {content.digest})")
    return 0


def cmd_test(args: argparse.Namespace) -> int:
    from bot.nlu.content_check import test_problems
    from bot.nlu.pipeline import Understander

    directory = _content_dir(args.dir)
    content = load_or_report(directory)
    if content is None:
        return 1
    count, problems = test_problems(content, Understander(content))
    _print_problems([_under(directory, p) for p in problems])
    if problems:
        print(f"failed: {len(problems)} of {count} content tests", file=sys.stderr)
        return 1
    print(f"ok: {count} content tests passed")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    from bot.explain import Explainer

    settings = _settings()
    content = load_or_report(_content_dir(args.content))
    if content is None:
        return 1
    explainer = Explainer(content, default_region=args.region or settings.default_region)
    if args.jsonl:
        for line in sys.stdin:
            text = line.rstrip("\r\n")
            print(json.dumps(explainer.explain(text, language=args.lang, region=args.region), ensure_ascii=False), flush=True)
        return 0
    if args.text is None:
        print("explain: give TEXT, or --jsonl to read lines from stdin", file=sys.stderr)
        return 2
    result = explainer.explain(args.text, language=args.lang, region=args.region)
    print(json.dumps(result, ensure_ascii=False, indent=None if args.json else 2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from bot.evaluation import evaluate_files, format_report

    content = load_or_report(_content_dir(args.content))
    if content is None:
        return 1
    report = evaluate_files(content, [Path(f) for f in args.files], misses=args.misses)
    if args.format == "json":
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from bot.bench import run_bench

    content = load_or_report(_content_dir(args.content))
    if content is None:
        return 1
    return run_bench(content, messages=args.messages, turns=args.turns, db=args.db)


def cmd_schema(args: argparse.Namespace) -> int:
    from bot.content.models import Escalation, IntentFile, Lexicon, Resources

    schemas = {
        "resources.yaml": Resources.model_json_schema(),
        "intents/*.yaml": IntentFile.model_json_schema(),
        "intents/escalation.yaml": Escalation.model_json_schema(),
        "intents/lexicon.yaml": Lexicon.model_json_schema(),
    }
    if args.file:
        print(json.dumps(schemas[args.file], indent=2))
    else:
        print(json.dumps(schemas, indent=2))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from bot.chat import run_chat

    return run_chat(_settings(), language=args.lang, region=args.region)


def cmd_run(args: argparse.Namespace) -> int:
    from bot.telegram.runner import run_bot

    return run_bot(_settings(), webhook=args.webhook)


def cmd_referrals_test(args: argparse.Namespace) -> int:
    """Send a referral marked test through ORG's channel now; exit 0 when it was delivered."""
    import asyncio

    from bot.referrals.commands import send_test_referral
    from bot.referrals.directory import ReferralDirectory

    settings = _settings()
    content = load_or_report(_content_dir(args.content))
    if content is None:
        return 1

    async def run() -> int:
        bot = None
        staff_send = None
        org = next((o for o in content.resources.organizations if o.id == args.org and o.referral is not None), None)
        if org is not None and org.referral is not None and org.referral.channel == "telegram":
            token = settings.bot_token.get_secret_value().strip() if settings.bot_token is not None else ""
            if not token:
                print("referrals test: this organisation's channel is a Telegram staff chat; set BOT_TOKEN", file=sys.stderr)
                return 2
            from bot.referrals.staff import bot_staff_sender
            from bot.telegram.runner import make_bot

            bot = make_bot(token, settings.telegram_api_base)
            staff_send = bot_staff_sender(bot)
        directory = ReferralDirectory(lambda: content, staff_send=staff_send)
        try:
            referral_id, result = await send_test_referral(directory, args.org)
        except LookupError as error:
            print(f"referrals test: {error}", file=sys.stderr)
            return 2
        finally:
            await directory.close()
            if bot is not None:
                await bot.session.close()
        shown = {"delivered": "delivered", "retry": "not delivered (would be retried)", "failed": "not delivered (refused)"}
        print(f"{shown[result.outcome]}: test referral {referral_id} to {args.org}: {result.reason}")
        return 0 if result.delivered else 1

    return asyncio.run(run())


def cmd_referrals_list(args: argparse.Namespace) -> int:
    """Referral counts by status, and which organisations take referrals. No personal data."""
    import asyncio

    from bot.referrals.commands import referral_counts
    from bot.store import open_store

    settings = _settings()
    if "://" not in settings.db and settings.db != ":memory:" and not Path(settings.db).exists():
        print(f"referrals list: no database at HUBBOT_DB={settings.db} (nothing has been queued there)", file=sys.stderr)
        return 1

    async def counts() -> dict[str, int]:
        async with open_store(settings.db) as store:
            return await referral_counts(store)

    try:
        by_status = asyncio.run(counts())
    except Exception as error:  # noqa: BLE001
        print(f"referrals list: cannot read the database HUBBOT_DB ({type(error).__name__})", file=sys.stderr)
        return 1
    width = max(len(status) for status in by_status)
    for status, count in by_status.items():
        print(f"{status:<{width}}  {count}")
    print(f"{'total':<{width}}  {sum(by_status.values())}")
    try:
        content = load_content(_content_dir(args.content))
    except ContentError:
        return 0
    takers = [o for o in content.resources.organizations if o.referral is not None]
    for org in takers:
        assert org.referral is not None
        fallback = f", fallback {org.referral.fallback}" if org.referral.fallback else ""
        print(f"organisation {org.id}: {org.referral.channel}{fallback}, acknowledge within {org.referral.ack_within_minutes} min")
    if not takers:
        print("no organisation in the content takes referrals")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hubbot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="the Telegram bot (polling, or --webhook)")
    p.add_argument("--webhook", action="store_true", help="serve HUBBOT_WEBHOOK_URL instead of polling")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("chat", help="talk to the bot in this terminal (no token, no network)")
    p.add_argument("--lang", choices=["en", "es"], default=None)
    p.add_argument("--region", default=None, help="ISO 3166 alpha-2, e.g. US, GB, MX")
    p.set_defaults(func=cmd_chat)

    p = sub.add_parser("validate", help="check the content; exit 1 with path:line problems")
    p.add_argument("dir", nargs="?", help="content directory (default: HUBBOT_CONTENT or the shipped content)")
    p.add_argument("--verbose", "-v", action="store_true", help="also print the load time")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("test", help="run the tests: blocks of escalation.yaml and the intent files")
    p.add_argument("dir", nargs="?")
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("explain", help="what a message would get, as JSON")
    p.add_argument("text", nargs="?")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--json", action="store_true", help="one line of JSON for TEXT")
    mode.add_argument("--jsonl", action="store_true", help="one message per stdin line, one JSON per output line")
    p.add_argument("--lang", choices=["en", "es"], default=None)
    p.add_argument("--region", default=None)
    p.add_argument("--content", default=None, help="content directory")
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("eval", help="recall, precision, false-crisis rate and topic accuracy on labelled JSONL")
    p.add_argument("files", nargs="+")
    p.add_argument("--format", choices=["text", "json"], default="text")
    p.add_argument("--misses", type=int, default=10, help="misses to list per file")
    p.add_argument("--content", default=None)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("bench", help="messages/s and latency of understanding, and full turns/s with SQLite")
    p.add_argument("--messages", type=int, default=20000)
    p.add_argument("--turns", type=int, default=3000)
    p.add_argument("--db", default=None, help="database for the turn benchmark (default: a temporary SQLite file)")
    p.add_argument("--content", default=None)
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("schema", help="JSON Schema of the content files")
    p.add_argument("file", nargs="?", choices=["resources.yaml", "intents/*.yaml", "intents/escalation.yaml", "intents/lexicon.yaml"])
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("referrals", help="referral outbox: send a test referral, count referrals by status")
    referrals = p.add_subparsers(dest="referrals_command", required=True)
    q = referrals.add_parser("test", help="send a referral marked test to ORG now and print the outcome")
    q.add_argument("org", help="organisation id (it needs a referral: block)")
    q.add_argument("--content", default=None, help="content directory")
    q.set_defaults(func=cmd_referrals_test)
    q = referrals.add_parser("list", help="referral counts by status (no personal data)")
    q.add_argument("--content", default=None, help="content directory")
    q.set_defaults(func=cmd_referrals_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = "INFO"
    try:
        level = _settings().log_level.upper()
    except Exception:  # noqa: BLE001 - a bad setting must not hide the command's own error message
        pass
    logging.basicConfig(stream=sys.stderr, level=getattr(logging, level, logging.INFO), format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
